//! The protobuf form of a batch (`proto/trackstack/v1/ingest.proto`), turned into the same [`IngestBatch`] the
//! JSON body becomes, so both paths share one validation and one write.

use trackstack_domain::model::{JsonMap, RunState};
use trackstack_domain::Error;
use trackstack_proto::v1 as pb;

use crate::batch::{IngestBatch, IngestPoint};

/// Media types that select the protobuf body.
pub const PROTOBUF_MEDIA_TYPES: [&str; 2] = ["application/x-protobuf", "application/protobuf"];

impl TryFrom<pb::IngestBatch> for IngestBatch {
    type Error = Error;

    fn try_from(batch: pb::IngestBatch) -> Result<Self, Error> {
        let points = batch.steps.len();
        let column = |name: &str, len: usize, optional: bool| {
            if len == points || (optional && len == 0) {
                Ok(())
            } else {
                let rule = if optional { "none or one per step" } else { "one per step" };
                Err(Error::invalid(name, format!("has {len} entries for {points} steps; expected {rule}")))
            }
        };
        column("key_index", batch.key_index.len(), false)?;
        column("values", batch.values.len(), false)?;
        column("times_ms", batch.times_ms.len(), true)?;
        let mut metrics = Vec::with_capacity(points);
        for (i, &index) in batch.key_index.iter().enumerate() {
            let key = batch.keys.get(index as usize).ok_or_else(|| {
                Error::invalid(
                    format!("key_index[{i}]"),
                    format!("{index} is out of range: the batch has {} keys", batch.keys.len()),
                )
            })?;
            metrics.push(IngestPoint {
                key: key.clone(),
                step: batch.steps[i],
                value: batch.values[i],
                time_ms: batch.times_ms.get(i).copied(),
            });
        }
        Ok(IngestBatch {
            run_id: batch.run_id,
            metrics,
            config: batch.config_json.as_deref().map(|text| json_object("config_json", text)).transpose()?,
            summary: batch.summary_json.as_deref().map(|text| json_object("summary_json", text)).transpose()?,
            tags: batch.replace_tags.then_some(batch.tags),
            state: batch.state.map(|state| run_state(&state)).transpose()?,
            exit_code: batch.exit_code,
        })
    }
}

fn json_object(field: &str, text: &str) -> Result<JsonMap, Error> {
    serde_json::from_str(text).map_err(|e| Error::invalid(field, format!("must be a JSON object: {e}")))
}

fn run_state(state: &str) -> Result<RunState, Error> {
    serde_json::from_value(serde_json::Value::String(state.to_owned())).map_err(|_| {
        Error::invalid("state", format!("`{state}` is not a run state (running, finished, failed, crashed, killed)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> pb::IngestBatch {
        pb::IngestBatch {
            run_id: "r1".into(),
            keys: vec!["loss".into(), "acc".into()],
            key_index: vec![0, 1, 0],
            steps: vec![0, 0, 1],
            values: vec![0.5, f64::NAN, 0.25],
            ..Default::default()
        }
    }

    #[test]
    fn columns_become_points() {
        let batch = IngestBatch::try_from(pb::IngestBatch {
            times_ms: vec![10, 11, 12],
            config_json: Some(r#"{"lr": 0.1}"#.into()),
            state: Some("finished".into()),
            ..columns()
        })
        .unwrap();
        let keys: Vec<&str> = batch.metrics.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["loss", "acc", "loss"]);
        assert!(batch.metrics[1].value.is_nan());
        assert_eq!(batch.metrics[2].time_ms, Some(12));
        assert_eq!(batch.config.unwrap()["lr"], 0.1);
        assert_eq!(batch.state, Some(RunState::Finished));
        assert_eq!(batch.tags, None);
        let untimed = IngestBatch::try_from(columns()).unwrap();
        assert_eq!(untimed.metrics[0].time_ms, None);
    }

    #[test]
    fn inconsistent_columns_name_the_field() {
        let cases = [
            (pb::IngestBatch { values: vec![1.0], ..columns() }, "values"),
            (pb::IngestBatch { times_ms: vec![1], ..columns() }, "times_ms"),
            (pb::IngestBatch { key_index: vec![0, 1, 2], ..columns() }, "key_index[2]"),
            (pb::IngestBatch { summary_json: Some("[1]".into()), ..columns() }, "summary_json"),
            (pb::IngestBatch { state: Some("done".into()), ..columns() }, "state"),
        ];
        for (batch, field) in cases {
            let error = IngestBatch::try_from(batch).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{error:?}");
        }
    }
}
