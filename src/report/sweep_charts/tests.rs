//! Sweep axes and their scales.

use super::*;
use serde_json::json;

#[test]
fn axes_pick_their_scale() {
    let a = axis("lr", &[&json!(1e-4), &json!(1e-3), &json!(1e-2)]);
    assert_eq!(a.scale, Scale::Log);
    assert!((a.lo + 4.0).abs() < 1e-12 && (a.hi + 2.0).abs() < 1e-12);
    assert_eq!(position(&a, &json!(1e-3)), Some(-3.0));
    let b = axis("sigma", &[&json!(0.5), &json!(1.5)]);
    assert_eq!(b.scale, Scale::Linear);
    assert_eq!(b.unit(1.0), 0.5);
    let c = axis(
        "data",
        &[&json!("hela"), &json!("synthetic"), &json!("hela")],
    );
    assert_eq!(
        c.scale,
        Scale::Categories(vec!["hela".into(), "synthetic".into()])
    );
    assert_eq!(position(&c, &json!("synthetic")), Some(1.0));
    assert_eq!(c.label(1.0), "synthetic");
    assert_eq!(c.label(0.5), "");
}
