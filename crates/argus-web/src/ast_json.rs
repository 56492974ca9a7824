//! `/api/v1/parse_query`: the syntax tree as the JSON Prometheus's UI reads (`translateAST`);
//! object keys sorted as Go marshals maps.

use argus_promql::ast::{AtModifier, Cardinality, Expr, ValueType, VectorSelector};
use serde_json::{Value, json};

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::Vector => "vector",
        ValueType::Matrix => "matrix",
        ValueType::String => "string",
    }
}

fn at_fields(at: Option<AtModifier>) -> (Value, Value) {
    match at {
        Some(AtModifier::Timestamp(ms)) => (json!(ms), Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
        None => (Value::Null, Value::Null),
    }
}

/// Prometheus lists the metric-name matcher after the others.
fn matchers(sel: &VectorSelector) -> Value {
    let is_name = |m: &&argus_model::Matcher| {
        sel.name.is_some()
            && m.name == argus_model::labels::METRIC_NAME
            && Some(m.value.as_str()) == sel.name.as_deref()
    };
    let rest = sel.matchers.iter().filter(|m| !is_name(m));
    let name = sel.matchers.iter().filter(is_name).take(1);
    Value::Array(
        rest.chain(name)
            .map(|m| json!({"name": m.name, "type": m.op.as_str(), "value": m.value}))
            .collect(),
    )
}

/// A JSON object of `fields`, taken as they are (`json!` would copy each value it is given,
/// which makes a deep tree cost the square of its depth).
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

pub fn translate(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate {
            op,
            expr,
            param,
            grouping,
            without,
            ..
        } => object([
            ("type", json!("aggregation")),
            ("op", json!(op.as_str())),
            ("expr", translate(expr)),
            ("param", param.as_deref().map_or(Value::Null, translate)),
            ("grouping", json!(grouping)),
            ("without", json!(without)),
        ]),
        Expr::Binary {
            op,
            lhs,
            rhs,
            matching,
            return_bool,
            ..
        } => {
            let matching = matching.as_ref().map_or(Value::Null, |m| {
                let card = match m.card {
                    Cardinality::OneToOne => "one-to-one",
                    Cardinality::ManyToOne => "many-to-one",
                    Cardinality::OneToMany => "one-to-many",
                    Cardinality::ManyToMany => "many-to-many",
                };
                json!({"card": card, "labels": m.labels, "on": m.on, "include": m.include})
            });
            object([
                ("type", json!("binaryExpr")),
                ("op", json!(op.as_str())),
                ("lhs", translate(lhs)),
                ("rhs", translate(rhs)),
                ("matching", matching),
                ("bool", json!(return_bool)),
            ])
        }
        Expr::Call { func, args, .. } => object([
            ("type", json!("call")),
            (
                "func",
                json!({
                    "name": func.name,
                    "argTypes": func.args.iter().map(|t| type_name(*t)).collect::<Vec<_>>(),
                    "variadic": func.optional,
                    "returnType": type_name(func.returns),
                }),
            ),
            ("args", Value::Array(args.iter().map(translate).collect())),
        ]),
        Expr::Matrix {
            selector, range_ms, ..
        } => {
            let (timestamp, start_or_end) = at_fields(selector.at);
            json!({
                "type": "matrixSelector",
                "name": selector.name.as_deref().unwrap_or(""),
                "range": range_ms,
                "offset": selector.offset_ms,
                "matchers": matchers(selector),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::Subquery {
            expr,
            range_ms,
            step_ms,
            offset_ms,
            at,
            ..
        } => {
            let (timestamp, start_or_end) = at_fields(*at);
            object([
                ("type", json!("subquery")),
                ("expr", translate(expr)),
                ("range", json!(range_ms)),
                ("offset", json!(offset_ms)),
                ("step", json!(step_ms.unwrap_or(0))),
                ("timestamp", timestamp),
                ("startOrEnd", start_or_end),
            ])
        }
        Expr::Number { value, .. } => json!({
            "type": "numberLiteral",
            "val": argus_model::gofmt::format_f(*value),
        }),
        Expr::Paren { expr, .. } => {
            object([("type", json!("parenExpr")), ("expr", translate(expr))])
        }
        Expr::String { value, .. } => json!({"type": "stringLiteral", "val": value}),
        Expr::Unary { negate, expr, .. } => object([
            ("type", json!("unaryExpr")),
            ("op", json!(if *negate { "-" } else { "+" })),
            ("expr", translate(expr)),
        ]),
        Expr::Vector(sel) => {
            let (timestamp, start_or_end) = at_fields(sel.at);
            json!({
                "type": "vectorSelector",
                "name": sel.name.as_deref().unwrap_or(""),
                "offset": sel.offset_ms,
                "matchers": matchers(sel),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_like_prometheus() {
        let e = argus_promql::parse(
            r#"sum by (job) (rate(a{b="c"}[5m] offset 1m)) > bool on (job) -b"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&translate(&e)).unwrap(),
            concat!(
                r#"{"bool":true,"lhs":{"expr":{"args":[{"matchers":[{"name":"b","type":"=","value":"c"},"#,
                r#"{"name":"__name__","type":"=","value":"a"}],"name":"a","offset":60000,"range":300000,"#,
                r#""startOrEnd":null,"timestamp":null,"type":"matrixSelector"}],"func":{"argTypes":["matrix"],"#,
                r#""name":"rate","returnType":"vector","variadic":0},"type":"call"},"grouping":["job"],"op":"sum","#,
                r#""param":null,"type":"aggregation","without":false},"matching":{"card":"one-to-one","include":[],"#,
                r#""labels":["job"],"on":true},"op":">","rhs":{"expr":{"matchers":[{"name":"__name__","type":"=","value":"b"}],"#,
                r#""name":"b","offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"op":"-","type":"unaryExpr"},"#,
                r#""type":"binaryExpr"}"#
            )
        );
        let e = argus_promql::parse("max_over_time(x[1h:] @ end())").unwrap();
        assert_eq!(
            serde_json::to_string(&translate(&e)).unwrap(),
            concat!(
                r#"{"args":[{"expr":{"matchers":[{"name":"__name__","type":"=","value":"x"}],"name":"x","#,
                r#""offset":0,"startOrEnd":null,"timestamp":null,"type":"vectorSelector"},"offset":0,"range":3600000,"#,
                r#""startOrEnd":"end","step":0,"timestamp":null,"type":"subquery"}],"func":{"argTypes":["matrix"],"#,
                r#""name":"max_over_time","returnType":"vector","variadic":0},"type":"call"}"#
            )
        );
    }
}
