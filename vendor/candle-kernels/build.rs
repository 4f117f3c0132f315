// esx's copy: the PTX kernels only (see vendor/README.md).
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
