//! `esx run`: the epoch loop. Adam with L2 decay, the poly schedule,
//! gradient accumulation, validation every epoch, best and last checkpoints,
//! every loss recorded in the run store, resume without duplicate steps,
//! Ctrl-C to a clean stop, a non-finite loss to a clean failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};

use super::adam::{poly_lr, Adam};
use super::checkpoint::{self, EpochSums, Position};
use super::dataset::prepare;
use super::device::{device, set_threads};
use super::signals::Interrupt;
use super::snapshots::Snapshots;
pub use super::step::Means;
use super::step::{check_finite, step_loss, validate};
use crate::config::{Composed, Config};
use crate::data::batches::{epoch_order, rng_for, Augment, BatchStream};
use crate::loss::{EmbedSegLoss, LossWeights};
use crate::model::{BranchedErfnet, Mode, Weights};
use crate::progress::Reporter;
use crate::store::heartbeat::STALE_AFTER;
use crate::store::provenance::now;
use crate::store::query::read_run;
use crate::store::{
    checkpoint_file, remove_partial_checkpoints, NewRun, Outcome, RunStatus, RunWriter,
    SweepMembership,
};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Infer(#[from] crate::infer::InferError),
    #[error("{0}")]
    Device(String),
    #[error("the loss became {value} at step {step} (epoch {epoch}) in the {term} term; training stopped (checkpoints of earlier epochs are kept)")]
    NonFinite {
        step: u64,
        epoch: u32,
        term: &'static str,
        value: f64,
    },
    #[error("cannot resume {dir}: {why}")]
    Resume { dir: PathBuf, why: String },
    #[error("{0}")]
    Search(String),
}

/// Decides at the end of an epoch whether a run goes on: a sweep's pruner.
pub trait EpochJudge {
    /// Called once epoch `epoch` of `epochs` is recorded and checkpointed:
    /// Some((stop, why)) where it decided, None where it says nothing, Err
    /// where it cannot decide (the run fails with that).
    fn judge(
        &self,
        run_dir: &std::path::Path,
        epoch: u32,
        epochs: u32,
    ) -> Result<Option<(bool, String)>, String>;
}

/// A new run, or a run to continue.
pub enum Start {
    New {
        composed: Box<Composed>,
        experiment: String,
        command: Vec<String>,
        /// The run directory goes in here (the runs root, or a sweep's folder).
        parent: PathBuf,
        /// A name prefix for the run directory (a sweep's point index).
        prefix: Option<String>,
        sweep: Option<SweepMembership>,
    },
    Resume {
        dir: PathBuf,
        /// Continued by the Slurm job that trained it, started again: the
        /// process that trained it has ended, whatever its heartbeat says.
        requeued: bool,
    },
}

/// One epoch's figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EpochReport {
    pub epoch: u32,
    /// Where it ran, when not on the CPU ("cuda:0, cuDNN tf32").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    pub lr: f64,
    pub train: Means,
    pub val: Option<Means>,
    pub val_iou: Option<f64>,
    pub images_per_s: f64,
    pub seconds: f64,
}

/// How a run went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunResult {
    pub id: String,
    pub dir: PathBuf,
    pub status: RunStatus,
    pub epochs: u32,
    pub steps: u64,
    pub best_val_iou: Option<f64>,
    pub last: Option<EpochReport>,
}

/// Runs training to the end, to an interruption, or to a failure. Once the
/// run is recorded, every way out marks it completed, interrupted or failed.
pub fn run(
    start: Start,
    reporter: &Reporter,
    interrupt: &Interrupt,
    judge: Option<&dyn EpochJudge>,
) -> Result<RunResult, TrainError> {
    let (config, mut writer, resume) = match start {
        Start::New {
            composed,
            experiment,
            command,
            parent,
            prefix,
            sweep,
        } => {
            device(&composed.config.device, composed.config.train.precision)?;
            set_threads(composed.config.threads)?;
            let new = NewRun {
                name: composed.config.name.clone(),
                config_toml: composed.to_toml(),
                overrides: composed.overrides.clone(),
                experiment: Some(experiment),
                command,
                sweep,
                journal: None,
            };
            let writer = RunWriter::create(&parent, prefix.as_deref(), &new)?;
            (composed.config, writer, false)
        }
        Start::Resume { dir, requeued } => {
            // Claimed first, checked under the claim: of two resumes started
            // together, one trains and the other is told who does.
            let claim = if requeued {
                super::slurm_job::claim_requeued(&dir, Duration::from_secs(180))?
            } else {
                RunWriter::claim(&dir)?
            };
            remove_partial_checkpoints(&dir);
            let info = read_run(&dir)?;
            let resume_err = |why: String| TrainError::Resume {
                dir: dir.clone(),
                why,
            };
            if info.status == RunStatus::Running && !requeued {
                // Its claim did not stop us: it trains on a host whose locks
                // this filesystem does not share. Its heartbeat says it lives.
                let ago = info.heartbeat.map_or(0.0, |b| (now() - b).max(0.0));
                return Err(resume_err(format!(
                    "it is running on {} (pid {}, heartbeat {ago:.0} s ago); it can be \
                     resumed once it ends or its heartbeat is {:.0} min old",
                    info.host,
                    info.pid,
                    STALE_AFTER / 60.0
                )));
            }
            if !checkpoint_file(&dir, "last").is_file() {
                return Err(resume_err(
                    "it has no checkpoint (it ended before its first epoch)".into(),
                ));
            }
            let config: Config = toml::from_str(&info.config)
                .map_err(|e| resume_err(format!("its recorded config: {e}")))?;
            device(&config.device, config.train.precision)?;
            set_threads(config.threads)?;
            (config, RunWriter::reopen(&dir, claim)?, true)
        }
    };
    let dir = writer.dir().to_path_buf();
    let id = writer.id().to_string();
    let mut started = false;
    let result = match train(
        &config,
        &mut writer,
        resume,
        reporter,
        interrupt,
        judge,
        &mut started,
    ) {
        Err(e) if resume && !started => {
            // The resume failed before it changed anything (data, checkpoint):
            // the run keeps the status it had; the attempt is an event.
            writer.give_up_resume(&e.to_string())?;
            return Err(e);
        }
        other => other,
    };
    let (outcome, ret) = match result {
        Ok(done) => {
            let (status, outcome) = if done.interrupted {
                (RunStatus::Interrupted, Outcome::Interrupted)
            } else if done.pruned {
                (RunStatus::Pruned, Outcome::Pruned)
            } else {
                (RunStatus::Completed, Outcome::Completed)
            };
            (
                outcome,
                Ok(RunResult {
                    id,
                    dir,
                    status,
                    epochs: done.epochs,
                    steps: done.steps,
                    best_val_iou: done.best_val_iou,
                    last: done.last,
                }),
            )
        }
        Err(e) => (Outcome::Failed(e.to_string()), Err(e)),
    };
    writer.finish(outcome)?;
    ret
}

struct Done {
    interrupted: bool,
    pruned: bool,
    epochs: u32,
    steps: u64,
    best_val_iou: Option<f64>,
    last: Option<EpochReport>,
}

/// Trains; `started` turns true once the run's record starts to change
/// (after data, model and checkpoint are ready).
fn train(
    cfg: &Config,
    writer: &mut RunWriter,
    resume: bool,
    reporter: &Reporter,
    interrupt: &Interrupt,
    judge: Option<&dyn EpochJudge>,
    started: &mut bool,
) -> Result<Done, TrainError> {
    let dev = device(&cfg.device, cfg.train.precision)?;
    let data = prepare(cfg, reporter)?;
    if !resume {
        writer.log_event("split", &data.split_json())?;
    }
    if !dev.is_cpu() {
        // What the run really ran on: the GPU and how its convolutions ran.
        let on = super::device::describe(&cfg.device, &dev);
        writer.log_event("device", &on)?;
        reporter.note(format!("device {on}"));
    }
    let weights = Weights::new(DType::F32, &dev);
    let net = BranchedErfnet::new(&weights, cfg.model.n_sigma, cfg.seed)?;
    weights.init_pytorch(cfg.seed)?;
    weights.init_output(cfg.model.n_sigma, cfg.model.sigma_init)?;
    let mut opt = Adam::new(
        weights.trainable(),
        cfg.lr,
        cfg.train.weight_decay,
        weights.backend,
    )?;
    let dir = writer.dir().to_path_buf();
    let mut pos = Position {
        best_iou: -1.0,
        ..Position::default()
    };
    if resume {
        pos = checkpoint::load(&checkpoint_file(&dir, "last"), &weights, Some(&mut opt))?;
        *started = true;
        writer.truncate_after(pos.step, pos.epoch)?;
        reporter.note(format!(
            "resuming at epoch {}, step {}",
            pos.epoch + 1,
            pos.step
        ));
    }
    let loss = EmbedSegLoss::new(
        LossWeights::from_config(&cfg.loss),
        cfg.model.n_sigma,
        weights.backend,
    );
    let snapshots = Snapshots::new(cfg, &data)?;
    let augment = Augment {
        dihedral: cfg.train.augment,
        intensity: cfg.train.intensity_jitter,
    };
    let b = cfg.batch_size;
    let mut last = None;
    let mut best = (pos.best_iou >= 0.0).then_some(pos.best_iou);
    for epoch in pos.epoch..cfg.epochs {
        let lr = poly_lr(cfg.lr, epoch, cfg.epochs);
        opt.lr = lr;
        let order = epoch_order(
            &data.train,
            b,
            cfg.train.steps_per_epoch,
            cfg.seed,
            epoch as u64,
        );
        let batches = order.len().div_ceil(b);
        let first = if epoch == pos.epoch { pos.batch } else { 0 };
        let mut sums = if epoch == pos.epoch {
            pos.sums
        } else {
            EpochSums::default()
        };
        let bar = reporter.custom(batches as u64, "{msg} [{bar:25}] {pos}/{len} eta {eta}");
        bar.set_position(first as u64);
        bar.set_message(format!("epoch {}/{}", epoch + 1, cfg.epochs));
        let stream = BatchStream::start(
            data.items.clone(),
            order[(first * b).min(order.len())..].to_vec(),
            b,
            augment,
            cfg.seed,
            epoch as u64,
            first * b,
            4,
        );
        let mut accumulated: Vec<Option<Tensor>> = Vec::new();
        let epoch_start = Instant::now();
        for (k, batch) in stream.enumerate() {
            let index = first + k;
            if accumulated.is_empty() && interrupt.requested() {
                bar.finish_and_clear();
                let at = Position {
                    epoch,
                    batch: index,
                    step: pos.step,
                    best_iou: best.unwrap_or(-1.0),
                    sums: EpochSums {
                        seconds: sums.seconds + epoch_start.elapsed().as_secs_f64(),
                        ..sums
                    },
                };
                writer.flush()?;
                checkpoint::save(&checkpoint_file(&dir, "last"), &weights, Some(&opt), &at)?;
                let why = if interrupt.time_limit() {
                    "the job's time limit is near (SIGUSR1); "
                } else {
                    ""
                };
                writer.log_event(
                    "interrupted",
                    &format!("{why}checkpoint at epoch {}, step {}", epoch + 1, pos.step),
                )?;
                return Ok(Done {
                    interrupted: true,
                    pruned: false,
                    epochs: epoch,
                    steps: pos.step,
                    best_val_iou: best,
                    last,
                });
            }
            let batch = batch?;
            net.reseed_dropout(rng_seed(cfg.seed, pos.step));
            let terms = step_loss(&net, &batch, &dev, &loss, Mode::Train, false)?;
            let grads = (&terms.total / cfg.train.virtual_batch as f64)?.backward()?;
            let mut fresh: Vec<Option<Tensor>> =
                opt.vars().map(|v| grads.get(v).cloned()).collect();
            if !accumulated.is_empty() {
                for (a, f) in accumulated.iter().zip(fresh.iter_mut()) {
                    if let (Some(a), Some(f)) = (a, f.as_mut()) {
                        *f = (&*f + a)?;
                    }
                }
            }
            accumulated = fresh;
            if (index + 1) % cfg.train.virtual_batch == 0 || index + 1 == batches {
                opt.step(&accumulated)?;
                accumulated.clear();
            }
            // Read after the optimiser's step: on a GPU the read waits for
            // the step, and a read before the backward pass would stall the
            // device between the loss and the gradients. A non-finite loss
            // still ends the run before anything is recorded or saved.
            let values = terms.values()?;
            check_finite(&values, pos.step + 1, epoch + 1)?;
            pos.step += 1;
            for (key, v) in [
                ("loss", values.value),
                ("inst", values.instance),
                ("var", values.var),
                ("seed", values.seed),
            ] {
                writer.log_scalar(pos.step, epoch + 1, "step", key, v)?;
            }
            sums.add(&values, batch.size);
            bar.set_message(format!(
                "epoch {}/{} loss {:.4}",
                epoch + 1,
                cfg.epochs,
                sums.loss / sums.batches as f64
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        sums.seconds += epoch_start.elapsed().as_secs_f64();
        let train = Means::of(&sums);
        let images_per_s = sums.images as f64 / sums.seconds.max(1e-9);
        let step = pos.step;
        let e = epoch + 1;
        for (key, v) in [
            ("loss", train.loss),
            ("inst", train.inst),
            ("var", train.var),
            ("seed", train.seed),
            ("lr", lr),
            ("images_per_s", images_per_s),
            ("seconds", sums.seconds),
        ] {
            writer.log_scalar(step, e, "train", key, v)?;
        }
        let val = validate(&net, &data, &dev, cfg, &loss)?;
        if let Some((m, iou)) = &val {
            for (key, v) in [
                ("loss", m.loss),
                ("inst", m.inst),
                ("var", m.var),
                ("seed", m.seed),
                ("iou", *iou),
            ] {
                writer.log_scalar(step, e, "val", key, v)?;
            }
        }
        let val_iou = val.as_ref().map(|v| v.1);
        let improved = val_iou.filter(|&iou| best.is_none_or(|b| iou > b));
        pos = Position {
            epoch: e,
            batch: 0,
            step,
            best_iou: improved.or(best).unwrap_or(-1.0),
            sums: EpochSums::default(),
        };
        // The epoch's end is in the store, then in the checkpoints; when a
        // checkpoint cannot be written (a full disk) the store takes the
        // epoch's end back, so that its best epoch is the one best.safetensors
        // holds and a resume redoes the epoch.
        writer.flush()?;
        // Both written beside their places first, then both put in place.
        let saved = (|| {
            let best_file = match improved {
                Some(iou) => {
                    let at = Position {
                        epoch: e,
                        step,
                        best_iou: iou,
                        ..Position::default()
                    };
                    Some(checkpoint::stage(
                        &checkpoint_file(&dir, "best"),
                        &weights,
                        None,
                        &at,
                    )?)
                }
                None => None,
            };
            let last_file =
                checkpoint::stage(&checkpoint_file(&dir, "last"), &weights, Some(&opt), &pos)?;
            if let Some(b) = best_file {
                b.commit()?;
            }
            last_file.commit()
        })();
        if let Err(err) = saved {
            let _ = writer.forget_epoch_end(e);
            return Err(err.into());
        }
        if let Some(iou) = improved {
            best = Some(iou);
            writer.log_event("checkpoint", &format!("best: epoch {e}, val IoU {iou:.4}"))?;
        }
        if let Some(snap) = snapshots.as_ref().filter(|s| s.due(e, cfg.epochs)) {
            snap.record(&weights, cfg, &dev, writer, (e, step))?;
        }
        let report = EpochReport {
            epoch: e,
            device: super::device::short(&cfg.device, &dev),
            lr,
            train,
            val: val.as_ref().map(|v| v.0),
            val_iou,
            images_per_s,
            seconds: sums.seconds,
        };
        reporter.note(crate::view::epoch_line(&report, cfg.epochs));
        last = Some(report);
        if let Some(judge) = judge {
            writer.flush()?;
            match judge.judge(&dir, e, cfg.epochs) {
                Ok(None) => {}
                Ok(Some((stop, why))) => {
                    writer.log_event(if stop { "pruned" } else { "rung" }, &why)?;
                    reporter.note(&why);
                    if stop {
                        return Ok(Done {
                            interrupted: false,
                            pruned: true,
                            epochs: e,
                            steps: pos.step,
                            best_val_iou: best,
                            last,
                        });
                    }
                }
                Err(why) => return Err(TrainError::Search(why)),
            }
        }
    }
    Ok(Done {
        interrupted: false,
        pruned: false,
        epochs: cfg.epochs,
        steps: pos.step,
        best_val_iou: best,
        last,
    })
}

fn rng_seed(seed: u64, step: u64) -> u64 {
    use rand::RngCore;
    rng_for(seed, u64::MAX - 3, step).next_u64()
}
