//! The CEL conditions of a metric (`successCondition`, `failureCondition`), with the `cel`
//! crate (cel-rust, the continuation of `cel-interpreter`): compiled once per advance with
//! an error that names the metric, the condition and the position, and evaluated over
//! `result` (a number, a list or a map).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cel::{Context, Program, Value};

/// A compiled condition and its source (for messages).
pub struct Condition {
    /// `successCondition` or `failureCondition`.
    pub field: &'static str,
    pub source: String,
    program: Program,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.source)
    }
}

/// Compile `source`. The error says where: `metric error-rate: successCondition does not
/// compile (line 1, column 8): ...`.
pub fn compile(metric: &str, field: &'static str, source: &str) -> Result<Condition, String> {
    let compiled = catch_unwind(AssertUnwindSafe(|| Program::compile(source)));
    match compiled {
        Ok(Ok(program)) => Ok(Condition {
            field,
            source: source.to_string(),
            program,
        }),
        Ok(Err(errors)) => {
            let first = errors.errors.first();
            let (line, column) = first.map_or((1, 1), |e| (e.pos.0, e.pos.1 + 1));
            let what = first.map_or_else(|| errors.to_string(), |e| e.msg.clone());
            Err(format!(
                "metric {metric}: {field} {source:?} does not compile (line {line}, column {column}): {what}"
            ))
        }
        Err(_) => Err(format!(
            "metric {metric}: {field} {source:?} does not compile"
        )),
    }
}

impl Condition {
    /// Evaluate over `result`; anything but a boolean is an error saying what it gave.
    pub fn eval(&self, result: &serde_json::Value) -> Result<bool, String> {
        let mut context = Context::default();
        context.add_variable_from_value("result", to_cel(result));
        let outcome = catch_unwind(AssertUnwindSafe(|| self.program.execute(&context)));
        match outcome {
            Ok(Ok(Value::Bool(b))) => Ok(b),
            Ok(Ok(other)) => Err(format!(
                "{} {:?} gave {} instead of true or false",
                self.field,
                self.source,
                type_name(&other)
            )),
            Ok(Err(e)) => Err(format!(
                "{} {:?} cannot be evaluated on result {}: {e}",
                self.field,
                self.source,
                super::shorten(&result.to_string(), 200)
            )),
            Err(_) => Err(format!(
                "{} {:?} crashed the evaluator",
                self.field, self.source
            )),
        }
    }
}

fn type_name(v: &Value) -> String {
    v.type_of().to_string()
}

/// A JSON value as CEL sees it: integers stay integers, other numbers are doubles (CEL
/// compares the two, so `result < 1` works on 0.5 and on 0).
pub fn to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::List(items.iter().map(to_cel).collect::<Vec<_>>().into())
        }
        serde_json::Value::Object(map) => {
            let map: HashMap<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn holds(source: &str, result: serde_json::Value) -> Result<bool, String> {
        compile("m", "successCondition", source)?.eval(&result)
    }

    #[test]
    fn conditions_over_a_number() {
        assert_eq!(holds("result < 0.01", json!(0.005)), Ok(true));
        assert_eq!(holds("result < 0.01", json!(0.5)), Ok(false));
        assert_eq!(holds("result < 1", json!(0)), Ok(true));
        assert_eq!(holds("result == 5", json!(5.0)), Ok(true));
        assert_eq!(holds("result >= 0.95 && result <= 1.0", json!(1)), Ok(true));
    }

    #[test]
    fn conditions_over_a_list_and_a_map() {
        assert_eq!(holds("result.all(x, x < 0.5)", json!([0.1, 0.2])), Ok(true));
        assert_eq!(
            holds("result.exists(x, x > 0.5)", json!([0.1, 0.9])),
            Ok(true)
        );
        assert_eq!(holds("size(result) == 0", json!([])), Ok(true));
        assert_eq!(holds("result[0] < 1", json!([0.5])), Ok(true));
        let m = json!({"p99": 250, "status": "ok", "inner": {"ok": true}});
        assert_eq!(
            holds("result.p99 < 300 && result.status == 'ok'", m.clone()),
            Ok(true)
        );
        assert_eq!(holds("result['inner'].ok", m), Ok(true));
        assert_eq!(holds("result", json!(true)), Ok(true));
    }

    #[test]
    fn a_condition_that_does_not_compile_names_metric_field_and_position() {
        let err = compile("error-rate", "failureCondition", "result < < 1").unwrap_err();
        assert!(
            err.starts_with("metric error-rate: failureCondition"),
            "{err}"
        );
        assert!(err.contains("line 1, column"), "{err}");
        assert!(compile("m", "successCondition", "").is_err());
    }

    #[test]
    fn a_result_of_the_wrong_type_is_an_error_not_false() {
        let err = holds("result < 0.01", json!([0.1, 0.2])).unwrap_err();
        assert!(err.contains("cannot be evaluated"), "{err}");
        let err = holds("result + 1", json!(1)).unwrap_err();
        assert!(err.contains("instead of true or false"), "{err}");
        assert!(holds("result < 1", json!(null)).is_err());
        assert!(holds("nope < 1", json!(1)).is_err());
    }
}
