//! esx's 3D pieces against EmbedSeg 0.2.5's 3D path on fixtures it computed
//! in float64 (tools/reference/make_fixtures_3d.py): SpatialEmbLoss_3d with
//! the anisotropic grid of its create_configs. (The same fixtures hold
//! BranchedERFNet_3d's outputs and gradients for the 3D model to come.)

mod common;

use candle_core::DType;
use common::Fixtures;
use esx::loss::embedseg_loss_graph_3d;

#[test]
fn spatial_emb_loss_3d_matches_embedseg() {
    let fixtures = Fixtures::new("embedseg3d");
    let f = fixtures.load("loss.safetensors");
    let meta = fixtures.reference();
    let want = &meta["loss"];
    let anisotropy = meta["anisotropy"].as_f64().unwrap();
    // The fixture's grid is EmbedSeg's 1024 wide (esx's spacing, 1/1023).
    assert_eq!(meta["grid"][2], 1024);
    let (pred, labels, centers, w) = common::loss_inputs(&f);
    assert_eq!(pred.dtype(), DType::F64);
    let terms = embedseg_loss_graph_3d(&pred, &labels, &centers, 3, anisotropy, &w).unwrap();
    common::assert_terms(&terms.values().unwrap(), want, "3D");
    let grads = terms.total.backward().unwrap();
    let got: Vec<f64> = grads
        .get(&pred)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let expected: Vec<f64> = f["grad_total"].flatten_all().unwrap().to_vec1().unwrap();
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(&expected)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err / scale < 1e-10, "gradient differs by {:e}", err / scale);

    // The anisotropy is what makes it right: the isotropic grid is not.
    let iso = embedseg_loss_graph_3d(&pred, &labels, &centers, 3, 1.0, &w).unwrap();
    let total = want["total"].as_f64().unwrap();
    assert!((iso.values().unwrap().value - total).abs() > 1e-6 * total);
}

/// BranchedERFNet_3d in float64 on candle's ops, weights decoded from the
/// fixture's codes: outputs in eval and train mode, running statistics
/// after the training pass, and parameter gradients of Σ out · r. The
/// expected values are stored as float32, so 1e-6 is the bar.
#[test]
fn branched_erfnet_3d_matches_embedseg_in_eval_and_train_mode() {
    use esx::backend::Backend;
    use esx::model::erfnet3d::BranchedErfnet3d;
    use esx::model::layers::Mode;
    use esx::model::Weights;

    let fixtures = Fixtures::new("embedseg3d");
    let w = Weights::with_backend(DType::F64, &candle_core::Device::Cpu, Backend::Native);
    let net = BranchedErfnet3d::new(&w, 3, 0).unwrap();
    common::decode_weights(&w, &fixtures);
    let out = fixtures.load("model_outputs.safetensors");
    let x = out["input"].to_dtype(DType::F64).unwrap();

    let eval = net.forward(&x, Mode::Eval).unwrap();
    let e = common::rel_err(&eval, &out["out_eval"]);
    assert!(e < 1e-6, "eval output differs by {e:e}");
    let train = net.forward(&x, Mode::TrainNoDropout).unwrap();
    let e = common::rel_err(&train, &out["out_train"]);
    assert!(e < 1e-6, "train output differs by {e:e}");

    let (running, grads) = common::assert_running_and_grads(&w, &train, &out, 1e-6);
    assert!(running >= 6, "{running}");
    assert_eq!(grads, 12);
}

/// esx's 3D clustering against Cluster_3d.cluster on a structured
/// prediction (tools/reference/make_cluster_fixture_3d.py): the same
/// instances, numbered alike. EmbedSeg keeps a proposal of more than
/// min_object_size voxels, esx one of at least min_size.
#[test]
fn clustering_3d_matches_embedseg() {
    use esx::infer::cluster_3d::cluster_3d;
    use esx::infer::ClusterParams;
    use esx::prediction_3d::Prediction3d;

    let f = Fixtures::new("embedseg3d").load("cluster.safetensors");
    let params: Vec<f64> = f["params"].to_vec1().unwrap();
    let raw: Vec<f32> = f["prediction"].flatten_all().unwrap().to_vec1().unwrap();
    let (_, d, h, w) = f["prediction"].dims4().unwrap();
    let p = Prediction3d::from_output(&raw, (d, h, w), params[3], 3);
    let cp = ClusterParams {
        seed_thresh: params[0] as f32,
        fg_thresh: params[1] as f32,
        min_size: params[2] as usize + 1,
    };
    let want: Vec<u32> = f["instances"].flatten_all().unwrap().to_vec1().unwrap();
    let found = want.iter().copied().max().unwrap();
    assert!(found >= 4, "the fixture has {found} instances");
    let differ = |labels: &[u32]| labels.iter().zip(&want).filter(|(a, b)| a != b).count();
    let n = differ(&cluster_3d(&p, &cp).data);
    assert_eq!(n, 0, "{n} voxels labelled otherwise than EmbedSeg");
    // Decoded at twice the anisotropy, the z embeddings no longer gather:
    // about a third of the instances' 488 voxels go otherwise.
    let wrong = Prediction3d::from_output(&raw, (d, h, w), 2.0 * params[3], 3);
    assert!(differ(&cluster_3d(&wrong, &cp).data) > 100);
}
