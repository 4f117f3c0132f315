//! The epoch loop: Adam with L2 decay, the poly schedule, gradient
//! accumulation, validation every epoch, best and last checkpoints, resume
//! without duplicate steps, a signal to a clean stop, a non-finite loss to a
//! clean failure. What it records goes through `MetricSink`, what it decides
//! through the policies of policy.rs; the run around it is session.rs's.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::adam::{poly_lr, Adam};
use super::checkpoint::{self, EpochSums, Position};
use super::dataset::{prepare, TrainData};
use super::init::unfrozen;
use super::metrics::{EpochObserver, EpochReport, MetricSink};
use super::policy::{judged, selection, Action, Best, Checkpoints, EpochJudge, StopPolicy};
use super::signals::Interrupt;
use super::snapshots::Snapshots;
use super::step::{check_finite, step_loss, validate, Means};
use super::TrainError;
use crate::config::{Config, Select};
use crate::data::batches::{epoch_order, rng_for, Augment, BatchStream};
use crate::loss::{EmbedSegLoss, LossWeights};
use crate::model::import::ModelFile;
use crate::model::{BranchedErfnet, Mode, Weights};
use crate::progress::Reporter;
use crate::store::{checkpoint_file, RunWriter};

/// How training ended (a failure is an error).
pub(super) struct Done {
    pub interrupted: bool,
    pub pruned: bool,
    pub epochs: u32,
    pub steps: u64,
    /// The best checkpoint's measure and value.
    pub best: Option<(Select, f64)>,
    pub last: Option<EpochReport>,
}

/// What training is handed: the config, the device it was opened on, and
/// who watches.
pub(super) struct Setting<'a> {
    pub cfg: &'a Config,
    pub dev: &'a Device,
    pub resume: bool,
    pub reporter: &'a Reporter,
    pub observer: &'a dyn EpochObserver,
    pub interrupt: &'a Interrupt,
    pub judge: Option<&'a dyn EpochJudge>,
    /// The weights a new run starts from (`init`).
    pub init: Option<&'a ModelFile>,
}

/// Trains; `started` turns true once the run's record starts to change
/// (after data, model and checkpoint are ready).
pub(super) fn train(
    s: &Setting,
    writer: &mut RunWriter,
    started: &mut bool,
) -> Result<Done, TrainError> {
    let cfg = s.cfg;
    let mut t = Trainer::new(s, writer, started)?;
    let checkpoints = Checkpoints::new(writer.dir());
    let stop = StopPolicy::new(s.interrupt);
    for epoch in t.pos.epoch..cfg.epochs {
        let lr = poly_lr(cfg.lr, epoch, cfg.epochs);
        let sums = match t.train_epoch(epoch, lr, &stop, writer, s.reporter)? {
            Epoch::Stopped(at) => {
                checkpoints.stopped(&stop, writer, &t.weights, &t.opt, &at)?;
                return Ok(t.done(Action::Stop, epoch));
            }
            Epoch::Ran(sums) => sums,
        };
        let e = epoch + 1;
        let mut report = t.report(e, lr, &sums);
        writer.training(t.pos.step, &report)?;
        if let Some((means, iou)) = validate(&t.net, &t.data, s.dev, cfg, &t.loss)? {
            (report.val, report.val_iou) = (Some(means), Some(iou));
            writer.validation(t.pos.step, &report)?;
        }
        if t.snapshots.scores_due(e, cfg.epochs) {
            let scores = t.snapshots.score(&t.weights, cfg, s.dev)?;
            writer.scores(t.pos.step, e, &scores)?;
            report.val_ap50 = Some(scores.ap50());
            report.val_ap = Some(scores.ap());
        }
        let improved = t.best.improved_by(&report);
        t.pos = Position {
            epoch: e,
            batch: 0,
            step: t.pos.step,
            best: improved.or(t.best.get()),
            ..Position::default()
        };
        let shown = improved.map(|v| (t.best.by, t.best.shown_value(v)));
        checkpoints.epoch_end(writer, &t.weights, &t.opt, &t.pos, shown)?;
        if let Some(v) = improved {
            t.best.take(v);
        }
        if t.snapshots.pictures_due(e, cfg.epochs) {
            t.snapshots
                .record_pictures(&t.weights, cfg, s.dev, writer, e)?;
        }
        s.observer.epoch_ended(&report, cfg.epochs);
        t.last = Some(report);
        if judged(s.judge, writer, s.reporter, e, cfg.epochs)? == Action::Prune {
            return Ok(t.done(Action::Prune, e));
        }
    }
    Ok(t.done(Action::Continue, cfg.epochs))
}

/// An epoch's batches: all of them, or stopped at a batch boundary.
enum Epoch {
    Ran(EpochSums),
    Stopped(Position),
}

/// Everything the loop trains with and where it stands.
struct Trainer<'a> {
    cfg: &'a Config,
    dev: &'a Device,
    data: TrainData,
    weights: Weights,
    net: BranchedErfnet,
    opt: Adam,
    loss: EmbedSegLoss,
    snapshots: Snapshots,
    pos: Position,
    best: Best,
    last: Option<EpochReport>,
}

impl<'a> Trainer<'a> {
    /// Data, model, optimiser and loss on the device; a resumed run's
    /// checkpoint loaded and its records after it taken back.
    fn new(
        s: &Setting<'a>,
        writer: &mut RunWriter,
        started: &mut bool,
    ) -> Result<Trainer<'a>, TrainError> {
        let (cfg, dev) = (s.cfg, s.dev);
        let data = prepare(cfg, s.reporter)?;
        if !s.resume {
            writer.log_event("split", &data.split_json())?;
        }
        if !dev.is_cpu() {
            // What the run really ran on: the GPU and how its convolutions ran.
            let on = crate::device::describe(&cfg.device, dev);
            writer.log_event("device", &on)?;
            s.reporter.note(format!("device {on}"));
        }
        let weights = Weights::new(DType::F32, dev);
        let net = BranchedErfnet::new(&weights, cfg.model.n_sigma, cfg.seed)?;
        weights.init_pytorch(cfg.seed)?;
        weights.init_output(cfg.model.n_sigma, cfg.model.sigma_init)?;
        if let (Some(file), false) = (s.init, s.resume) {
            file.load_into(&weights)?;
        }
        let mut opt = Adam::new(
            unfrozen(&weights, &cfg.train.freeze),
            cfg.lr,
            cfg.train.weight_decay,
            weights.backend,
        )?;
        let mut pos = Position::default();
        let snapshots = Snapshots::new(cfg, &data)?;
        let (select, why) = selection(cfg.train.select, snapshots.scores_frames());
        if let Some(why) = why {
            s.reporter.note(&why);
            if !s.resume {
                writer.log_event("select", &why)?;
            }
        }
        if s.resume {
            let last = checkpoint_file(writer.dir(), "last");
            pos = checkpoint::load(&last, &weights, Some(&mut opt))?;
            *started = true;
            writer.truncate_after(pos.step, pos.epoch)?;
            s.reporter.note(format!(
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
        Ok(Trainer {
            cfg,
            dev,
            data,
            weights,
            net,
            opt,
            loss,
            snapshots,
            best: Best::from_position(select, &pos),
            pos,
            last: None,
        })
    }

    /// One epoch's batches from where the position stands, each step's loss
    /// recorded; stops at a batch boundary where the policy says so.
    fn train_epoch(
        &mut self,
        epoch: u32,
        lr: f64,
        stop: &StopPolicy,
        sink: &mut dyn MetricSink,
        reporter: &Reporter,
    ) -> Result<Epoch, TrainError> {
        let cfg = self.cfg;
        let b = cfg.batch_size;
        self.opt.lr = lr;
        let order = epoch_order(
            &self.data.train,
            b,
            cfg.train.steps_per_epoch,
            cfg.seed,
            epoch as u64,
        );
        let batches = order.len().div_ceil(b);
        let resumed = epoch == self.pos.epoch;
        let first = if resumed { self.pos.batch } else { 0 };
        let mut sums = if resumed {
            self.pos.sums
        } else {
            EpochSums::default()
        };
        let bar = reporter.custom(batches as u64, "{msg} [{bar:25}] {pos}/{len} eta {eta}");
        bar.set_position(first as u64);
        bar.set_message(format!("epoch {}/{}", epoch + 1, cfg.epochs));
        let augment = Augment {
            dihedral: cfg.train.augment,
            intensity: cfg.train.intensity_jitter,
        };
        let stream = BatchStream::start(
            self.data.items.clone(),
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
            if stop.before_batch(!accumulated.is_empty()) == Action::Stop {
                bar.finish_and_clear();
                return Ok(Epoch::Stopped(Position {
                    epoch,
                    batch: index,
                    step: self.pos.step,
                    best: self.best.get(),
                    best_iou: -1.0,
                    sums: EpochSums {
                        seconds: sums.seconds + epoch_start.elapsed().as_secs_f64(),
                        ..sums
                    },
                }));
            }
            let batch = batch?;
            self.net.reseed_dropout(rng_seed(cfg.seed, self.pos.step));
            let terms = step_loss(&self.net, &batch, self.dev, &self.loss, Mode::Train, false)?;
            let grads = (&terms.total / cfg.train.virtual_batch as f64)?.backward()?;
            let mut fresh: Vec<Option<Tensor>> =
                self.opt.vars().map(|v| grads.get(v).cloned()).collect();
            for (a, f) in accumulated.iter().zip(fresh.iter_mut()) {
                if let (Some(a), Some(f)) = (a, f.as_mut()) {
                    *f = (&*f + a)?;
                }
            }
            accumulated = fresh;
            if (index + 1) % cfg.train.virtual_batch == 0 || index + 1 == batches {
                self.opt.step(&accumulated)?;
                accumulated.clear();
            }
            // Read after the optimiser's step: on a GPU the read waits for
            // the step, and a read before the backward pass would stall the
            // device between the loss and the gradients. A non-finite loss
            // still ends the run before anything is recorded or saved.
            let values = terms.values()?;
            check_finite(&values, self.pos.step + 1, epoch + 1)?;
            self.pos.step += 1;
            sink.step(self.pos.step, epoch + 1, &values)?;
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
        Ok(Epoch::Ran(sums))
    }

    /// Epoch `epoch`'s (1-based) training figures; validation comes after.
    fn report(&self, epoch: u32, lr: f64, sums: &EpochSums) -> EpochReport {
        EpochReport {
            epoch,
            device: crate::device::short(&self.cfg.device, self.dev),
            lr,
            train: Means::of(sums),
            val: None,
            val_iou: None,
            val_ap50: None,
            val_ap: None,
            images_per_s: sums.images as f64 / sums.seconds.max(1e-9),
            seconds: sums.seconds,
        }
    }

    /// How it ended after `epochs` epochs: `Stop` interrupted, `Prune`
    /// pruned, `Continue` completed.
    fn done(self, how: Action, epochs: u32) -> Done {
        Done {
            interrupted: how == Action::Stop,
            pruned: how == Action::Prune,
            epochs,
            steps: self.pos.step,
            best: self.best.shown().map(|v| (self.best.by, v)),
            last: self.last,
        }
    }
}

fn rng_seed(seed: u64, step: u64) -> u64 {
    use rand::RngCore;
    rng_for(seed, u64::MAX - 3, step).next_u64()
}
