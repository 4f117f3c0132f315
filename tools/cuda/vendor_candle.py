#!/usr/bin/env python3
"""Writes vendor/candle-core and vendor/candle-kernels: candle 0.11.1 as
published, changed only so that a `--features cuda` build of esx loads the
CUDA libraries at run time instead of linking them at start-up.

- candle-core: cudarc's `dynamic-linking` feature becomes `dynamic-loading`
  (libcuda, cublas, curand, nvrtc are dlopen'ed on first use), and the
  crate's tests, benches, examples and dev-dependencies are left out.
- candle-kernels: only the PTX kernels are built; the statically linked
  MoE / GGUF kernels (libmoe.a, which needs libcudart at start-up) are left
  out and their FFI entry points become stubs that abort (esx never calls
  quantized-model kernels).
- candle-core's backprop: a gradient that reaches a tensor with none yet is
  taken as it is (made contiguous) instead of added to a tensor of zeros,
  which cost a memset and a full add pass per gradient: about a tenth of
  an esx training step on the CPU (see `accumulate` below).
- Both: `#![allow(warnings, clippy::all)]`, as registry crates get, since
  path dependencies are linted with the project.

Run from the repository root after `cargo fetch` of the published crates
(or with CANDLE_SRC pointing at a folder holding candle-core-0.11.1 and
candle-kernels-0.11.1).
"""
import glob
import os
import re
import shutil
import sys

VERSION = "0.11.1"
ALLOW = "#![allow(warnings, clippy::all)]\n"


def source(name):
    roots = [os.environ.get("CANDLE_SRC", "")]
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    roots += glob.glob(os.path.join(home, "registry", "src", "*"))
    for root in roots:
        path = os.path.join(root, f"{name}-{VERSION}")
        if root and os.path.isdir(path):
            return path
    sys.exit(f"{name}-{VERSION} not found in the cargo registry; set CANDLE_SRC")


def drop_sections(toml, prefixes):
    """Removes [section]s whose header starts with one of `prefixes`."""
    out, keep = [], True
    for line in toml.splitlines(keepends=True):
        if line.startswith("["):
            keep = not any(line.startswith(p) for p in prefixes)
        if keep:
            out.append(line)
    return "".join(out)


def copy(name, dest, skip=()):
    src = source(name)
    if os.path.exists(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    for item in ["Cargo.toml", "LICENSE", "LICENSE-MIT", "LICENSE-APACHE", "README.md", "build.rs"]:
        if os.path.exists(os.path.join(src, item)):
            shutil.copy(os.path.join(src, item), dest)
    shutil.copytree(
        os.path.join(src, "src"),
        os.path.join(dest, "src"),
        ignore=lambda d, names: [n for n in names if os.path.relpath(os.path.join(d, n), src) in skip],
    )
    return src


def allow_lints(lib_rs):
    with open(lib_rs) as f:
        text = f.read()
    with open(lib_rs, "w") as f:
        f.write(ALLOW + text)


def core(dest):
    copy("candle-core", dest)
    path = os.path.join(dest, "Cargo.toml")
    with open(path) as f:
        toml = f.read()
    toml = drop_sections(toml, ["[[test]]", "[[bench]]", "[[example]]", "[dev-dependencies"])
    assert toml.count('"dynamic-linking",') == 1, "candle-core's cudarc features changed"
    toml = toml.replace('"dynamic-linking",', '"dynamic-loading",')
    with open(path, "w") as f:
        f.write(toml)
    allow_lints(os.path.join(dest, "src", "lib.rs"))


ACCUMULATE = r"""
    /// Adds `grad` to the gradient of `tensor`. Patched by esx: the first
    /// gradient is taken as it is (made contiguous, as a sum would be)
    /// instead of being added to a tensor of zeros, which cost a memset and
    /// a full add pass per gradient. A gradient of another shape, dtype or
    /// device still goes through the add, which reports it as before.
    fn accumulate(&mut self, tensor: &Tensor, grad: &Tensor) -> Result<()> {
        let fits = grad.shape() == tensor.shape()
            && grad.dtype() == tensor.dtype()
            && grad.device().same_device(tensor.device());
        match self.0.entry(tensor.id()) {
            Entry::Vacant(entry) if fits => {
                entry.insert(grad.contiguous()?);
            }
            _ => {
                let sum = self.or_insert(tensor)?;
                *sum = sum.add(grad)?;
            }
        }
        Ok(())
    }

"""

# `let s = grads.or_insert(t)?; *s = s.add(&g)?` with g a plain name.
SUM_INTO_ZEROS = re.compile(
    r"let (\w+) = grads\.or_insert\((\w+)\)\?;\n\s*\*\1 = \1\.add\(&(\w+)\)\?(;?)"
)


def accumulate(backprop_rs):
    """Gradients are accumulated without a tensor of zeros first."""
    with open(backprop_rs) as f:
        text = f.read()
    text, n = SUM_INTO_ZEROS.subn(r"grads.accumulate(\2, &\3)?\4", text)
    assert n == 37, f"candle-core's backprop changed: {n} sums into zeros"
    anchor = "    /// Get the gradient tensor associated with the given tensor, or, if it does not exist,"
    assert text.count(anchor) == 1, "candle-core's GradStore changed"
    text = text.replace(anchor, ACCUMULATE + anchor)
    with open(backprop_rs, "w") as f:
        f.write(text)


STUB = """pub unsafe extern "C" fn {name}({params}){ret} {{
    unavailable("{name}")
}}
"""


def ffi_stubs(ffi):
    """The extern block's declarations as functions that abort."""
    body = ffi[ffi.index('extern "C" {') + len('extern "C" {'): ffi.rindex("}")]
    out = [
        "//! esx's build leaves candle's MoE and GGUF kernels out (they link\n"
        "//! libcudart at start-up); these entry points only abort.\n",
        "use core::ffi::c_void;\n\n",
        "fn unavailable(name: &str) -> ! {\n"
        '    eprintln!("candle kernel {name} is not built into this esx (quantized models are not supported)");\n'
        "    std::process::abort()\n}\n\n",
    ]
    pattern = re.compile(r"((?:#\[cfg[^\]]*\]\s*)?)pub fn (\w+)\((.*?)\)\s*(->\s*[\w:]+)?\s*;", re.S)
    n = 0
    for m in pattern.finditer(body):
        cfg, name, params, ret = m.group(1), m.group(2), m.group(3), m.group(4)
        params = re.sub(r"//[^\n]*", "", params)
        params = ", ".join(
            "_" + p.strip() for p in params.split(",") if p.strip()
        )
        out.append(cfg.strip() + ("\n" if cfg else ""))
        out.append(STUB.format(name=name, params=params, ret=f" {ret}" if ret else ""))
        n += 1
    assert n == ffi.count("pub fn "), "every FFI declaration became a stub"
    return "".join(out)


BUILD_RS = """// esx's copy: the PTX kernels only (see vendor/README.md).
use cudaforge::{KernelBuilder, Result};
use std::env;
use std::path::PathBuf;

fn main() -> Result<()> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let bindings = KernelBuilder::new()
        .source_dir("src")
        .exclude(&["moe_*.cu", "mmvq_gguf.cu", "mmq_*.cu"])
        .arg("--expt-relaxed-constexpr")
        .arg("-std=c++17")
        .arg("-O3")
        .build_ptx()?;
    bindings.write(&out_dir.join("ptx.rs"))?;
    Ok(())
}
"""


def kernels(dest):
    copy("candle-kernels", dest, skip=("src/moe", "src/mmq_gguf", "src/mmvq_gguf.cu"))
    with open(os.path.join(dest, "build.rs"), "w") as f:
        f.write(BUILD_RS)
    ffi = os.path.join(dest, "src", "ffi.rs")
    with open(ffi) as f:
        text = f.read()
    with open(ffi, "w") as f:
        f.write(ffi_stubs(text))
    allow_lints(os.path.join(dest, "src", "lib.rs"))


if __name__ == "__main__":
    core("vendor/candle-core")
    kernels("vendor/candle-kernels")
    print("wrote vendor/candle-core and vendor/candle-kernels")
