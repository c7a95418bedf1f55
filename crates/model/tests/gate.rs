//! The gate's margins rank what its flags decide: positive exactly where a modality is flagged,
//! and growing with the score and with the novelty distance.

use mmguard_model::{Novelty, Thresholds};
use proptest::prelude::*;

fn gate(camera: f32, sensor: f32, novelty: Option<f32>) -> Thresholds {
    Thresholds { camera, sensor, channel: None, novelty, novelty_scale: None, novelty_statistic: Novelty::Window }
}

proptest! {
    #[test]
    fn a_margin_is_positive_exactly_where_the_gate_flags(
        t in (1e-4f32..0.9999, 1e-4f32..0.9999),
        s in (0.0f32..1.0, 0.0f32..1.0),
        novelty in proptest::option::of(0.5f32..100.0),
        distance in proptest::option::of(0.0f64..200.0),
        scale in proptest::option::of(0.05f32..20.0),
    ) {
        let g = Thresholds { novelty_scale: scale, ..gate(t.0, t.1, novelty) };
        let scores = [s.0, s.1];
        let flags = g.flags(scores, distance);
        let margins = g.margins(scores, distance);
        for m in 0..2 {
            // away from the threshold itself, where f32 and the logit may round either way
            if margins[m].abs() > 1e-4 {
                prop_assert_eq!(flags[m], margins[m] > 0.0, "modality {}: margin {} flags {:?}", m, margins[m], flags);
            }
        }
    }

    #[test]
    fn a_margin_grows_with_the_score_and_the_distance(
        s in 0.01f32..0.98, more in 0.001f32..0.01, d in 0.1f64..100.0, further in 1.01f64..3.0,
    ) {
        for scale in [None, Some(0.3), Some(4.0)] {
        let g = Thresholds { novelty_scale: scale, ..gate(0.7, 0.9, Some(20.0)) };
        let [c0, s0] = g.margins([s, s], Some(d));
        let [c1, s1] = g.margins([s + more, s + more], Some(d));
        prop_assert!(c1 > c0 && s1 >= s0);
        let [_, far] = g.margins([s, s], Some(d * further));
        prop_assert!(far >= s0);
        // without a novelty threshold the distance is not looked at
        let plain = Thresholds { novelty: None, ..g };
        prop_assert_eq!(plain.margins([s, s], Some(d)), plain.margins([s, s], Some(d * further)));
        }
    }
}
