//! PyTorch checkpoints (`torch.save`'s zip: a pickle and one file per
//! storage) read without Python and without running anything: candle's
//! pickle reader only builds the objects the opcodes describe, and only the
//! tensor-table subset is accepted here — a state dict whose values are
//! `torch._utils._rebuild_tensor_v2` over a storage, nothing else callable.
//! EmbedSeg keeps its state dict under `model_state_dict`, beside `epoch`
//! and `best_iou`; a bare state dict is taken too.

use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

/// A `.pth` larger than this in its pickle is not a checkpoint's table.
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// What a PyTorch checkpoint holds that esx uses.
#[derive(Debug)]
pub struct PthCheckpoint {
    /// The state dict's tensors (`module.` prefixes removed), as float32
    /// (integer buffers such as `num_batches_tracked` as they are).
    pub tensors: Vec<(String, Tensor)>,
    /// EmbedSeg's `epoch` and `best_iou`, where the file holds them as numbers.
    pub epoch: Option<i64>,
    pub best_iou: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct PthError {
    pub path: PathBuf,
    pub why: String,
}

/// Reads `path`'s state dict.
pub fn read_pth(path: &Path) -> Result<PthCheckpoint, PthError> {
    let bad = |why: String| PthError {
        path: path.to_path_buf(),
        why,
    };
    let mut file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut head = [0u8; 4];
    let zip_head = file.read_exact(&mut head).is_ok() && &head == b"PK\x03\x04";
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        bad(if zip_head {
            format!("a zip that cannot be read, truncated or damaged ({e})")
        } else {
            format!("not a PyTorch checkpoint: not a zip archive as torch.save writes ({e})")
        })
    })?;
    let pickle_name = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| bad("not a PyTorch checkpoint: the zip holds no ARCHIVE/data.pkl".into()))?;
    let archive = pickle_name.trim_end_matches("/data.pkl").to_string();
    let pickle = {
        let entry = zip.by_name(&pickle_name).map_err(|e| bad(e.to_string()))?;
        if entry.size() > MAX_PICKLE_BYTES {
            return Err(bad(format!(
                "its pickle is {} bytes: not a checkpoint's tensor table",
                entry.size()
            )));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry
            .take(MAX_PICKLE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("reading {pickle_name}: {e} (a truncated file?)")))?;
        bytes
    };
    let root = parse_pickle(&pickle).map_err(|why| bad(format!("{pickle_name}: {why}")))?;
    let (state, epoch, best_iou) = state_dict(root).map_err(bad)?;
    let entries = tensor_table(state).map_err(bad)?;
    let strip = entries.iter().all(|e| e.name.starts_with("module."));
    let mut tensors = Vec::with_capacity(entries.len());
    for e in entries {
        let data_name = format!("{archive}/data/{}", e.key);
        let mut bytes = Vec::new();
        zip.by_name(&data_name)
            .map_err(|err| bad(format!("tensor `{}`: storage {data_name}: {err}", e.name)))?
            .read_to_end(&mut bytes)
            .map_err(|err| bad(format!("tensor `{}`: {err} (a truncated file?)", e.name)))?;
        let t = e
            .tensor(&bytes)
            .map_err(|why| bad(format!("tensor `{}`: {why}", e.name)))?;
        let name = if strip {
            e.name["module.".len()..].to_string()
        } else {
            e.name
        };
        tensors.push((name, t));
    }
    Ok(PthCheckpoint {
        tensors,
        epoch,
        best_iou,
    })
}

/// The object the pickle describes (nothing is called: a GLOBAL or REDUCE
/// only becomes a node). A malformed pickle is an error, never a panic.
fn parse_pickle(bytes: &[u8]) -> Result<Object, String> {
    let run = || -> Result<Object, String> {
        let mut stack = Stack::empty();
        let mut reader = std::io::BufReader::new(bytes);
        stack
            .read_loop(&mut reader)
            .map_err(|e| format!("not a pickle esx can read ({e})"))?;
        stack
            .finalize()
            .map_err(|e| format!("not a pickle esx can read ({e})"))
    };
    std::panic::catch_unwind(run).unwrap_or_else(|_| Err("a malformed pickle".into()))
}

/// A state dict's (name, value) pairs, as the pickle holds them.
type Pairs = Vec<(Object, Object)>;

/// The state dict and EmbedSeg's epoch and best IoU beside it.
fn state_dict(root: Object) -> Result<(Pairs, Option<i64>, Option<f64>), String> {
    let Object::Dict(top) = root else {
        return Err(format!(
            "holds {}, not a dict of tensors or EmbedSeg's checkpoint dict",
            describe(&root)
        ));
    };
    let key = |k: &Object| match k {
        Object::Unicode(s) => Some(s.clone()),
        _ => None,
    };
    let nested = top
        .iter()
        .position(|(k, _)| key(k).as_deref() == Some("model_state_dict"));
    let Some(at) = nested else {
        if top.iter().any(|(_, v)| matches!(v, Object::Reduce { .. })) {
            return Ok((top, None, None));
        }
        let mut keys: Vec<String> = top.iter().filter_map(|(k, _)| key(k)).collect();
        keys.sort();
        keys.truncate(8);
        return Err(format!(
            "holds no `model_state_dict` and no tensors (its keys: {})",
            keys.join(", ")
        ));
    };
    let number = |name: &str| {
        top.iter()
            .find(|(k, _)| key(k).as_deref() == Some(name))
            .and_then(|(_, v)| match v {
                Object::Int(i) => Some(*i as f64),
                Object::Long(i) => Some(*i as f64),
                Object::Float(f) => Some(*f),
                _ => None,
            })
    };
    let epoch = number("epoch").map(|v| v as i64);
    let best_iou = number("best_iou");
    let mut top = top;
    match top.swap_remove(at).1 {
        Object::Dict(state) => Ok((state, epoch, best_iou)),
        Object::Reduce { callable, .. } => Err(format!(
            "refused: where the state dict belongs the pickle calls {}, which a tensor table never does (esx runs nothing from the file)",
            describe(&callable)
        )),
        other => Err(format!(
            "its `model_state_dict` is {}, not a dict of tensors",
            describe(&other)
        )),
    }
}

/// One tensor of the table: where its storage lies and how it is laid out.
struct Entry {
    name: String,
    key: String,
    dtype: DType,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

impl Entry {
    fn tensor(&self, bytes: &[u8]) -> Result<Tensor, String> {
        let elem = self.dtype.size_in_bytes();
        let count: usize = self.shape.iter().product();
        let contiguous: Vec<usize> = (0..self.shape.len())
            .map(|i| self.shape[i + 1..].iter().product())
            .collect();
        if count > 1 && self.stride != contiguous {
            return Err(format!(
                "strides {:?} for shape {:?}: only contiguous tensors are read",
                self.stride, self.shape
            ));
        }
        let start = self.offset * elem;
        let end = start + count * elem;
        if bytes.len() < end {
            return Err(format!(
                "its storage holds {} bytes, the tensor needs {end} (a truncated file?)",
                bytes.len()
            ));
        }
        let t = Tensor::from_raw_buffer(&bytes[start..end], self.dtype, &self.shape, &Device::Cpu)
            .map_err(|e| e.to_string())?;
        match self.dtype {
            DType::I64 | DType::U8 | DType::U32 => Ok(t),
            _ => t.to_dtype(DType::F32).map_err(|e| e.to_string()),
        }
    }
}

/// Every (name, tensor) of a state dict, each checked to be a plain tensor
/// rebuilt from a storage: anything else callable is refused by name.
fn tensor_table(state: Pairs) -> Result<Vec<Entry>, String> {
    let mut out = Vec::with_capacity(state.len());
    for (k, v) in state {
        let Object::Unicode(name) = k else {
            return Err(format!(
                "its state dict has a key that is {}, not a name",
                describe(&k)
            ));
        };
        // PyTorch's state_dict() keeps the modules' versions here.
        if name == "_metadata" && inert(&v) {
            continue;
        }
        let entry = tensor_entry(&name, v).map_err(|why| format!("tensor `{name}`: {why}"))?;
        out.push(entry);
    }
    if out.is_empty() {
        return Err("its state dict holds no tensors".into());
    }
    Ok(out)
}

fn tensor_entry(name: &str, v: Object) -> Result<Entry, String> {
    let (callable, args) = match v {
        Object::Reduce { callable, args } => (*callable, *args),
        other => return Err(format!("is {}, not a tensor", describe(&other))),
    };
    let (callable, args) = match callable {
        Object::Class {
            module_name,
            class_name,
        } if module_name == "torch._utils" && class_name == "_rebuild_parameter" => match args {
            Object::Tuple(mut a) if !a.is_empty() => match a.swap_remove(0) {
                Object::Reduce { callable, args } => (*callable, *args),
                other => return Err(format!("a parameter of {}", describe(&other))),
            },
            other => return Err(format!("a parameter of {}", describe(&other))),
        },
        c => (c, args),
    };
    match &callable {
        Object::Class {
            module_name,
            class_name,
        } if module_name == "torch._utils" && class_name == "_rebuild_tensor_v2" => {}
        other => {
            return Err(format!(
                "refused: the pickle calls {}, which a tensor table never does (esx runs nothing from the file)",
                describe(other)
            ))
        }
    }
    let Object::Tuple(args) = args else {
        return Err("_rebuild_tensor_v2 without its arguments".into());
    };
    let [storage, offset, size, stride, ..] = args.as_slice() else {
        return Err(format!("_rebuild_tensor_v2 with {} arguments", args.len()));
    };
    let Object::PersistentLoad(storage) = storage else {
        return Err(format!("a storage that is {}", describe(storage)));
    };
    let Object::Tuple(storage) = storage.as_ref() else {
        return Err("a storage reference that is not a tuple".into());
    };
    let [Object::Unicode(kind), Object::Class {
        module_name,
        class_name,
    }, Object::Unicode(key), ..] = storage.as_slice()
    else {
        return Err("a storage reference esx cannot read".into());
    };
    if kind != "storage" || module_name != "torch" {
        return Err(format!("a storage of {module_name}.{class_name}"));
    }
    let dtype = match class_name.as_str() {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "ByteStorage" => DType::U8,
        other => return Err(format!("a {other}, which esx does not read")),
    };
    if key.contains('/') || key.contains("..") {
        return Err(format!("a storage key `{key}` that is not a plain name"));
    }
    Ok(Entry {
        name: name.to_string(),
        key: key.clone(),
        dtype,
        offset: count(offset).ok_or("an offset that is not a number")?,
        shape: counts(size).ok_or("a shape that is not a tuple of sizes")?,
        stride: counts(stride).ok_or("strides that are not a tuple of numbers")?,
    })
}

/// Plain data only: nothing callable anywhere inside.
fn inert(o: &Object) -> bool {
    match o {
        Object::Dict(kv) => kv.iter().all(|(k, v)| inert(k) && inert(v)),
        Object::List(v) | Object::Tuple(v) => v.iter().all(inert),
        Object::Class { .. }
        | Object::Reduce { .. }
        | Object::Build { .. }
        | Object::PersistentLoad(_)
        | Object::Mark => false,
        _ => true,
    }
}

fn count(o: &Object) -> Option<usize> {
    match o {
        Object::Int(i) if *i >= 0 => Some(*i as usize),
        Object::Long(i) if *i >= 0 => usize::try_from(*i).ok(),
        _ => None,
    }
}

fn counts(o: &Object) -> Option<Vec<usize>> {
    match o {
        Object::Tuple(v) => v.iter().map(count).collect(),
        _ => None,
    }
}

/// A short description of a pickle object for a message.
fn describe(o: &Object) -> String {
    match o {
        Object::Class {
            module_name,
            class_name,
        } => format!("{module_name}.{class_name}"),
        Object::Reduce { callable, .. } => format!("a call of {}", describe(callable)),
        Object::Build { callable, .. } => format!("an object built from {}", describe(callable)),
        Object::Dict(_) => "a dict".into(),
        Object::List(_) => "a list".into(),
        Object::Tuple(_) => "a tuple".into(),
        Object::Unicode(s) => format!("the string {s:?}"),
        Object::Int(_) | Object::Long(_) => "a number".into(),
        Object::Float(_) => "a number".into(),
        Object::Bool(_) => "a bool".into(),
        Object::None => "None".into(),
        Object::Mark => "a mark".into(),
        Object::PersistentLoad(_) => "a storage".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/import")
            .join(name)
    }

    #[test]
    fn an_embedseg_checkpoint_gives_its_tensors_epoch_and_best_iou() {
        let c = read_pth(&fixture("best_iou_model.pth")).unwrap();
        assert_eq!(c.epoch, Some(7));
        assert_eq!(c.best_iou, Some(0.625));
        let by_name: std::collections::HashMap<_, _> = c.tensors.into_iter().collect();
        let w = &by_name["decoders.0.output_conv.weight"];
        assert_eq!(w.dims(), &[16, 4, 2, 2]);
        assert_eq!(w.dtype(), DType::F32);
        // The value the fixture script set by hand.
        let b: Vec<f32> = by_name["decoders.1.output_conv.bias"].to_vec1().unwrap();
        assert_eq!(b, vec![0.25]);
        let n: Vec<i64> = by_name["encoder.initial_block.bn.num_batches_tracked"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(n, vec![123]);
        // The optimiser's state (tensors too) is not taken for the model's.
        assert!(by_name.keys().all(|k| !k.contains("exp_avg")));
    }

    #[test]
    fn data_parallel_prefixes_are_removed() {
        let c = read_pth(&fixture("other_arch.pth")).unwrap();
        let names: Vec<&str> = c.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"0.weight"), "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with("module.")));
    }

    #[test]
    fn a_pickle_that_calls_a_function_is_refused_by_name() {
        let e = read_pth(&fixture("calls_a_function.pth")).unwrap_err();
        assert!(
            e.why.contains("posix.system") && e.why.contains("refused"),
            "{e}"
        );
    }

    #[test]
    fn not_a_zip_and_truncated_files_are_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.pth");
        std::fs::write(&text, "not a checkpoint").unwrap();
        let e = read_pth(&text).unwrap_err().to_string();
        assert!(
            e.contains("not a zip archive") && e.contains("notes.pth"),
            "{e}"
        );

        let whole = std::fs::read(fixture("best_iou_model.pth")).unwrap();
        let cut = dir.path().join("cut.pth");
        std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
        let e = read_pth(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.pth") && !e.contains('\n'), "{e}");
    }

    /// A zip as torch.save lays it out, holding `pickle` as its table.
    fn zipped(dir: &Path, pickle: &[u8]) -> PathBuf {
        use std::io::Write;
        let path = dir.join("made.pth");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opts).unwrap();
        z.write_all(pickle).unwrap();
        z.finish().unwrap();
        path
    }

    #[test]
    fn a_table_of_another_shape_says_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        // [1]
        let e = read_pth(&zipped(dir.path(), b"\x80\x02]q\x00K\x01a.")).unwrap_err();
        assert!(e.why.contains("holds a list, not a dict of tensors"), "{e}");
        // {"epoch": 3, "weights": None}
        let e = read_pth(&zipped(
            dir.path(),
            b"\x80\x02}q\x00(X\x05\x00\x00\x00epochK\x03X\x07\x00\x00\x00weightsNu.",
        ))
        .unwrap_err();
        assert!(
            e.why
                .contains("holds no `model_state_dict` and no tensors (its keys: epoch, weights)"),
            "{e}"
        );
        // {"model_state_dict": {"w": 2.5}}
        let e = read_pth(&zipped(
            dir.path(),
            b"\x80\x02}q\x00X\x10\x00\x00\x00model_state_dict}q\x01X\x01\x00\x00\x00wG@\x04\x00\x00\x00\x00\x00\x00ss.",
        ))
        .unwrap_err();
        assert!(
            e.why.contains("tensor `w`: is a number, not a tensor"),
            "{e}"
        );
    }

    #[test]
    fn malformed_pickles_are_errors_not_panics() {
        // Opcodes cut anywhere in a real table, and noise.
        let zip = std::fs::File::open(fixture("other_arch.pth")).unwrap();
        let mut zip = zip::ZipArchive::new(zip).unwrap();
        let name = zip
            .file_names()
            .filter_map(Result::ok)
            .map(|n| n.into_owned())
            .find(|n| n.ends_with("data.pkl"))
            .unwrap();
        let mut pickle = Vec::new();
        zip.by_name(&name)
            .unwrap()
            .read_to_end(&mut pickle)
            .unwrap();
        assert!(parse_pickle(&pickle).is_ok());
        for cut in (0..pickle.len()).step_by(7) {
            let _ = parse_pickle(&pickle[..cut]);
        }
        let mut noisy = pickle.clone();
        for (i, b) in noisy.iter_mut().enumerate().skip(2).step_by(5) {
            *b = b.wrapping_mul(31).wrapping_add(i as u8);
        }
        let _ = parse_pickle(&noisy);
        assert!(parse_pickle(b"\x80\x02]q\x00(K\x01e.").is_ok());
        assert!(parse_pickle(b"\xff").is_err());
    }
}
