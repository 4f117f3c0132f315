//! `esx prepare centers|crops|sizes DATASET …`: instance centres, training
//! crops, and the objects' sizes with the "auto" rules.

use std::path::PathBuf;

use esx::config::{Annotations, AutoSize, CenterMethod, Normalization};
use esx::data::crops::{prepare_crops, CropSpec};
use esx::data::object_sizes::ObjectSizes;
use esx::data::prepare::{all_sequences, prepare_centers};
use esx::progress::Reporter;

use super::{parse_anisotropy, parse_enum, print_json};

/// Prepare a CTC dataset for training (esx run does this by itself)
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Args)]
pub struct Common {
    /// The dataset folder (holding 01/, 01_GT/, …)
    pub dataset: PathBuf,
    /// Centre of each instance
    #[arg(long, default_value = "medoid", value_parser = parse_enum::<CenterMethod>)]
    pub method: CenterMethod,
    /// GT, ST or both (GT where a frame has it, ST elsewhere)
    #[arg(long, default_value = "GT", value_parser = parse_enum::<Annotations>)]
    pub annotations: Annotations,
    /// Sequences, comma separated (default: every NN folder)
    #[arg(long, value_delimiter = ',')]
    pub sequences: Vec<String>,
    /// No progress bar
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum What {
    /// Write NN_GT/INSTANCE_CENTERS/man_segNNN.tif (the instance id at its centre;
    /// 2D images or 3D stacks)
    Centers {
        #[command(flatten)]
        common: Common,
        /// For 3D stacks: z spacing over xy spacing, for the medoid
        /// (default: from the first image's ImageJ metadata, else 1)
        #[arg(long, value_parser = parse_anisotropy, allow_negative_numbers = true)]
        anisotropy: Option<f64>,
    },
    /// Print the objects' sizes in the masks and the "auto" crop and
    /// min_size they give (2D images or 3D stacks); writes nothing
    Sizes(Common),
    /// Write TRAIN_CROPS_SxS/ (one crop per instance, centred on it)
    Crops {
        #[command(flatten)]
        common: Common,
        /// Crop side in pixels, or auto: from the objects in the masks
        /// (EmbedSeg's rule, printed with its numbers)
        #[arg(long, default_value = "auto", value_parser = parse_crop_size)]
        crop_size: AutoSize,
        #[arg(long, default_value = "percentile", value_parser = parse_enum::<Normalization>)]
        normalization: Normalization,
        /// Skip images smaller than the crop instead of padding them
        #[arg(long)]
        no_pad: bool,
    },
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Centers {
            common: c,
            anisotropy,
        } => {
            let reporter = Reporter::terminal(c.quiet);
            let seqs = sequences(&c)?;
            let r = prepare_centers(
                &c.dataset,
                &seqs,
                c.annotations,
                c.method,
                anisotropy,
                &reporter,
            )?;
            if c.json {
                return print_json(&r);
            }
            println!(
                "{} frames: {} written, {} already current, {} instances{}{}",
                r.frames,
                r.written,
                r.current,
                r.instances,
                if r.empty > 0 {
                    format!(", {} empty masks skipped", r.empty)
                } else {
                    String::new()
                },
                match (r.anisotropy, &r.anisotropy_from) {
                    (Some(a), Some(from)) => format!("; 3D stacks, anisotropy {a} ({from})"),
                    _ => String::new(),
                }
            );
        }
        What::Sizes(c) => {
            let seqs = sequences(&c)?;
            let sizes = ObjectSizes::read(&c.dataset, &seqs, c.annotations)?;
            if c.json {
                let mut v = serde_json::to_value(&sizes)?;
                v["auto_min_size"] = sizes.auto_min_size().into();
                if sizes.is_3d() {
                    let (depth, side) = sizes.auto_crop_3d();
                    v["auto_crop_size"] = serde_json::json!([depth, side, side]);
                } else {
                    v["auto_crop_size"] = sizes.auto_crop().into();
                }
                return print_json(&v);
            }
            println!("{}", sizes.describe(true, true));
        }
        What::Crops {
            common: c,
            crop_size,
            normalization,
            no_pad,
        } => {
            let mut config = esx::config::Config::default();
            config.data.crop_size = crop_size;
            config.validate()?;
            let reporter = Reporter::terminal(c.quiet);
            let seqs = sequences(&c)?;
            let (crop_size, sizes) = match crop_size {
                AutoSize::Fixed(n) => (n, None),
                AutoSize::Auto => {
                    let sizes = ObjectSizes::read(&c.dataset, &seqs, c.annotations)?;
                    (sizes.auto_crop(), Some(sizes))
                }
            };
            if let (Some(sizes), false) = (&sizes, c.json) {
                println!("crop size auto: {}", sizes.describe(true, false));
            }
            let spec = CropSpec {
                crop_size,
                center: c.method,
                annotations: c.annotations,
                normalization,
                pmin: config.data.pmin,
                pmax: config.data.pmax,
                pad: !no_pad,
            };
            let r = prepare_crops(&c.dataset, &seqs, &spec, &reporter)?;
            if c.json {
                let mut v = serde_json::to_value(&r)?;
                if let Some(sizes) = sizes {
                    v["object_sizes"] = serde_json::to_value(sizes)?;
                }
                return print_json(&v);
            }
            println!(
                "{} frames: {} cropped, {} already current; {} crops in {}",
                r.frames,
                r.written_frames,
                r.current_frames,
                r.crops,
                r.dir.display()
            );
        }
    }
    Ok(())
}

fn sequences(c: &Common) -> anyhow::Result<Vec<String>> {
    if c.sequences.is_empty() {
        Ok(all_sequences(&c.dataset)?)
    } else {
        Ok(c.sequences.clone())
    }
}

fn parse_crop_size(s: &str) -> Result<AutoSize, String> {
    match s {
        "auto" => Ok(AutoSize::Auto),
        n => n
            .parse()
            .map(AutoSize::Fixed)
            .map_err(|_| format!("`{n}`: expected a size in pixels or auto")),
    }
}
