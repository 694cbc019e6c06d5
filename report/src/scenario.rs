//! One `RANGEFAULT-RESULT` line: a result of one of the probe's scenarios, tagged by its name,
//! or a user program's own (`vmm run --guest-cmd`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{
    BenchCell, FaultInjectResult, FaultResult, KmemleakResult, SelftestsResult, SemanticsResult,
    SkeletonResult, SoakResult, TouchResult, TraceOverhead,
};

/// The prefix of a result line on the guest console; the JSON of a [`GuestResult`] follows.
pub const RESULT_PREFIX: &str = "RANGEFAULT-RESULT ";

/// The probe's scenarios, written once: the enum, its tag names, and one accessor each.
macro_rules! scenarios {
    ($($(#[$doc:meta])* $name:literal => $variant:ident($ty:ty), $accessor:ident;)*) => {
        /// Every result the probe prints. The `scenario` field names the variant; a line with a
        /// missing field or a field of the wrong type does not parse.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "scenario")]
        pub enum ScenarioResult {
            $($(#[$doc])* #[serde(rename = $name)] $variant($ty),)*
        }

        impl ScenarioResult {
            /// The `scenario` names of the probe's results.
            pub const NAMES: &[&str] = &[$($name),*];

            /// The scenario's name, as in the line's `scenario` field.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)*
                }
            }

            $(
                #[doc = concat!("The result when this is `", $name, "`.")]
                pub fn $accessor(&self) -> Option<&$ty> {
                    match self {
                        Self::$variant(result) => Some(result),
                        _ => None,
                    }
                }
            )*
        }
    };
}

scenarios! {
    "skeleton" => Skeleton(SkeletonResult), skeleton;
    /// One per strategy the driver offers.
    "faults" => Faults(FaultResult), faults;
    /// `range-mm` on a mapping 4 KiB past alignment.
    "faults-misaligned" => FaultsMisaligned(TouchResult), faults_misaligned;
    "touch-all" => TouchAll(TouchResult), touch_all;
    /// One per range strategy.
    "semantics" => Semantics(SemanticsResult), semantics;
    "mm-selftests" => MmSelftests(SelftestsResult), mm_selftests;
    "trace-overhead" => TraceOverhead(TraceOverhead), trace_overhead;
    /// One per cell (subject x order x round).
    "bench" => Bench(BenchCell), bench;
    "fault-inject" => FaultInject(FaultInjectResult), fault_inject;
    "soak" => Soak(SoakResult), soak;
    "kmemleak" => Kmemleak(KmemleakResult), kmemleak;
}

impl ScenarioResult {
    /// Whether the scenario's own checks passed.
    pub fn pass(&self) -> bool {
        match self {
            Self::Skeleton(r) => r.pass,
            Self::Faults(r) => r.touch.pass,
            Self::FaultsMisaligned(r) | Self::TouchAll(r) => r.pass,
            Self::Semantics(r) => r.pass,
            Self::MmSelftests(r) => r.pass,
            Self::TraceOverhead(r) => r.pass,
            Self::Bench(r) => r.pass,
            Self::FaultInject(r) => r.pass,
            Self::Soak(r) => r.pass,
            Self::Kmemleak(r) => r.pass,
        }
    }
}

/// A result line as the host keeps it: the probe's, typed, or a user program's, as written.
/// A line whose `scenario` is one of the probe's must be that scenario's type: a user line
/// cannot stand in for a probe result that no longer parses.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GuestResult {
    /// Boxed: the probe's results are large, user lines mostly small.
    Probe(Box<ScenarioResult>),
    User(Map<String, Value>),
}

impl GuestResult {
    /// Reads a result line's JSON (a syntax error, a non-object or a probe result of the wrong
    /// shape is an error).
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        let probe = value
            .get("scenario")
            .and_then(Value::as_str)
            .is_some_and(|name| ScenarioResult::NAMES.contains(&name));
        if probe {
            return serde_json::from_value(value).map(|r| GuestResult::Probe(Box::new(r)));
        }
        match value {
            Value::Object(map) => Ok(GuestResult::User(map)),
            other => Err(serde::de::Error::custom(format!(
                "a result is a JSON object, not {other}"
            ))),
        }
    }

    pub fn probe(&self) -> Option<&ScenarioResult> {
        match self {
            GuestResult::Probe(result) => Some(result),
            GuestResult::User(_) => None,
        }
    }

    /// Whether it passed: the probe's verdict, or a user line's `pass` if it has a boolean one.
    pub fn pass(&self) -> Option<bool> {
        match self {
            GuestResult::Probe(result) => Some(result.pass()),
            GuestResult::User(map) => map.get("pass").and_then(Value::as_bool),
        }
    }

    /// The `scenario` field (a user line may have none).
    pub fn name(&self) -> Option<&str> {
        match self {
            GuestResult::Probe(result) => Some(result.name()),
            GuestResult::User(map) => map.get("scenario").and_then(Value::as_str),
        }
    }
}

impl<'de> Deserialize<'de> for GuestResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        GuestResult::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The results of one kind in `results`, e.g. `of(&report.scenarios, ScenarioResult::soak)`.
pub fn of<'a, T>(
    results: &'a [GuestResult],
    pick: impl Fn(&'a ScenarioResult) -> Option<&'a T>,
) -> Vec<&'a T> {
    results
        .iter()
        .filter_map(GuestResult::probe)
        .filter_map(pick)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kmemleak_line() -> String {
        r#"{"scenario":"kmemleak","pass":true,"enabled":false,"clean":null,"scan_ms":null,
            "report":"boot without kmemleak=on"}"#
            .into()
    }

    #[test]
    fn a_probe_line_round_trips_with_its_tag() {
        let result: GuestResult = serde_json::from_str(&kmemleak_line()).unwrap();
        let probe = result.probe().expect("a probe result");
        assert_eq!((probe.name(), probe.pass()), ("kmemleak", true));
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["scenario"], "kmemleak");
        assert_eq!(serde_json::from_value::<GuestResult>(json).unwrap(), result);
    }

    #[test]
    fn a_probe_line_of_the_wrong_shape_is_an_error_not_a_user_line() {
        let line = kmemleak_line().replace(r#""enabled":false,"#, "");
        let error = serde_json::from_str::<GuestResult>(&line).unwrap_err();
        assert!(error.to_string().contains("enabled"), "{error}");
        let typo = kmemleak_line().replace(r#""pass":true"#, r#""pass":"yes""#);
        assert!(serde_json::from_str::<GuestResult>(&typo).is_err());
    }

    #[test]
    fn user_lines_are_kept_as_written() {
        let line = r#"{"scenario":"user","pass":true,"device":"/dev/rangefault0"}"#;
        let result: GuestResult = serde_json::from_str(line).unwrap();
        assert_eq!(result.name(), Some("user"));
        assert!(result.probe().is_none());
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::from_str::<Value>(line).unwrap()
        );
        assert!(serde_json::from_str::<GuestResult>("[1]").is_err());
    }

    #[test]
    fn every_name_is_a_tag_of_the_enum() {
        for name in ScenarioResult::NAMES {
            // A known tag with no fields fails on a field, never on the tag.
            let error = serde_json::from_value::<ScenarioResult>(serde_json::json!({
                "scenario": name
            }))
            .unwrap_err()
            .to_string();
            assert!(error.contains("missing field"), "{name}: {error}");
        }
    }
}
