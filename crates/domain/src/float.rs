//! JSON has no NaN or infinity, yet they are valid metric values. They travel as the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"` (the protobuf JSON mapping's choice); finite values stay plain numbers.

use serde::{de, Deserializer, Serializer};

/// Returns the JSON value for `v`: a number when finite, else one of the three strings.
pub fn to_json(v: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(v) {
        Some(n) => serde_json::Value::Number(n),
        None => serde_json::Value::String(non_finite_name(v).to_owned()),
    }
}

/// Parses a JSON value as a metric value; `None` when it is neither a number nor one of the three strings.
pub fn from_json(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => parse_non_finite(s),
        _ => None,
    }
}

fn non_finite_name(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn parse_non_finite(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// `#[serde(with = "trackstack_domain::float::json")]` for an `f64` field.
pub mod json {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            serializer.serialize_f64(*v)
        } else {
            serializer.serialize_str(non_finite_name(*v))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        deserializer.deserialize_any(FloatVisitor)
    }

    struct FloatVisitor;

    impl de::Visitor<'_> for FloatVisitor {
        type Value = f64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number or one of \"NaN\", \"Infinity\", \"-Infinity\"")
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<f64, E> {
            parse_non_finite(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
        }
    }
}

/// Like [`json`] for an `Option<f64>` field (`null` stays `null`).
pub mod json_opt {
    use super::*;
    use serde::Deserialize;

    pub fn serialize<S: Serializer>(v: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => json::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "json")] f64);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug)]
    struct Point {
        #[serde(with = "json")]
        value: f64,
    }

    #[test]
    fn non_finite_values_round_trip_as_strings() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.1, -3.0, f64::MAX, f64::MIN_POSITIVE] {
            let text = serde_json::to_string(&Point { value: v }).unwrap();
            let back: Point = serde_json::from_str(&text).unwrap();
            assert!(back.value.to_bits() == v.to_bits() || (v.is_nan() && back.value.is_nan()), "{text}");
        }
        assert_eq!(serde_json::to_string(&Point { value: f64::NAN }).unwrap(), r#"{"value":"NaN"}"#);
    }

    #[test]
    fn other_strings_are_rejected() {
        let err = serde_json::from_str::<Point>(r#"{"value":"nan"}"#).unwrap_err();
        assert!(err.to_string().contains("expected a number or one of"), "{err}");
    }
}
