//! The gate's margins rank what its flags decide: positive exactly where a modality is flagged,
//! and growing with the score and with each novelty distance.

use mmguard_model::{Distances, Thresholds};
use proptest::prelude::*;

fn gate(camera: f32, sensor: f32, novelty: Option<f32>, column_novelty: Option<f32>) -> Thresholds {
    Thresholds {
        camera,
        sensor,
        channel: None,
        novelty,
        novelty_scale: None,
        column_novelty,
        column_novelty_scale: None,
    }
}

fn at(window: f64, column: f64) -> Option<Distances> {
    Some(Distances { window, column })
}

proptest! {
    #[test]
    fn a_margin_is_positive_exactly_where_the_gate_flags(
        t in (1e-4f32..0.9999, 1e-4f32..0.9999),
        s in (0.0f32..1.0, 0.0f32..1.0),
        novelty in proptest::option::of(0.5f32..100.0),
        column_novelty in proptest::option::of(0.5f32..1000.0),
        distances in proptest::option::of((0.0f64..200.0, 0.0f64..2000.0)),
        scales in (proptest::option::of(0.05f32..20.0), proptest::option::of(0.05f32..20.0)),
    ) {
        let g = Thresholds {
            novelty_scale: scales.0,
            column_novelty_scale: scales.1,
            ..gate(t.0, t.1, novelty, column_novelty)
        };
        let scores = [s.0, s.1];
        let d = distances.map(|(window, column)| Distances { window, column });
        let flags = g.flags(scores, d);
        let margins = g.margins(scores, d);
        for m in 0..2 {
            // away from the threshold itself, where f32 and the logit may round either way
            if margins[m].abs() > 1e-4 {
                prop_assert_eq!(flags[m], margins[m] > 0.0, "modality {}: margin {} flags {:?}", m, margins[m], flags);
            }
        }
    }

    #[test]
    fn a_margin_grows_with_the_score_and_each_distance(
        s in 0.01f32..0.98, more in 0.001f32..0.01, d in 0.1f64..100.0, c in 0.1f64..1000.0,
        further in 1.01f64..3.0,
    ) {
        for scale in [None, Some(0.3), Some(4.0)] {
            let g = Thresholds {
                novelty_scale: scale,
                column_novelty_scale: scale,
                ..gate(0.7, 0.9, Some(20.0), Some(300.0))
            };
            let [c0, s0] = g.margins([s, s], at(d, c));
            let [c1, s1] = g.margins([s + more, s + more], at(d, c));
            prop_assert!(c1 > c0 && s1 >= s0);
            let [_, far] = g.margins([s, s], at(d * further, c));
            prop_assert!(far >= s0);
            let [_, far_column] = g.margins([s, s], at(d, c * further));
            prop_assert!(far_column >= s0);
            // without a novelty threshold its distance is not looked at
            let no_window = Thresholds { novelty: None, ..g };
            prop_assert_eq!(no_window.margins([s, s], at(d, c)), no_window.margins([s, s], at(d * further, c)));
            let no_column = Thresholds { column_novelty: None, ..g };
            prop_assert_eq!(no_column.margins([s, s], at(d, c)), no_column.margins([s, s], at(d, c * further)));
        }
    }

    #[test]
    fn a_column_past_its_threshold_flags_the_sensor_alone(
        d in 0.0f64..19.9, c in 300.0f64..3000.0,
    ) {
        let g = gate(0.7, 0.9, Some(20.0), Some(300.0));
        prop_assert_eq!(g.flags([0.1, 0.1], at(d, c)), [false, true]);
        prop_assert_eq!(g.flags([0.1, 0.1], at(d, 299.0)), [false, false]);
    }
}
