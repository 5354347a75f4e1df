//! Every answer a test reads through [`super::Api`] is checked twice: against the OpenAPI
//! document (node/src/openapi.json: the route and status are documented, the JSON has exactly
//! the documented fields with the documented types) and against the shared API types
//! (`veilwatt_verifier::api`: it decodes, and encodes back to the same JSON). So the document,
//! the node and the clients' types cannot drift apart on any answer the suites see.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use veilwatt_verifier::api::{
    AccountView, BlockRange, BlockView, CommitEvent, ErrorBody, ForwardOutcome, MeterView,
    PeriodView, RegistryLeaves, RegistryView, StateValue, StatusView, TxStatusView,
};
use veilwatt_verifier::state::StateProof;

/// The OpenAPI document the node serves.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::from_str(veilwatt_node::api::OPENAPI).expect("openapi.json is JSON")
    })
}

/// The document's path template matching `path` (no query), if any.
pub fn template_of(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .find(|t| {
            let tp: Vec<&str> = t.split('/').collect();
            tp.len() == parts.len()
                && tp.iter().zip(&parts).all(|(t, p)| {
                    (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p
                })
        })
        .map(String::as_str)
}

/// A named schema of the document.
pub fn component(name: &str) -> &'static Value {
    &document()["components"]["schemas"][name]
}

fn resolve(schema: &Value) -> Result<&'static Value, String> {
    let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
        return Err("not a reference".into());
    };
    let name = r
        .strip_prefix("#/components/schemas/")
        .ok_or_else(|| format!("reference {r} outside #/components/schemas"))?;
    let s = component(name);
    if s.is_null() {
        return Err(format!("reference to an undefined schema {name}"));
    }
    Ok(s)
}

/// Checks `v` against `schema`, strictly: an object schema lists every field (each required:
/// serde always writes them all, `null` for none) and the value has exactly those, unless it
/// is declared free-form (`additionalProperties: true`); every schema has a type, a reference
/// or a combination.
pub fn validate(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if v.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if schema.get("$ref").is_some() {
        return validate(resolve(schema)?, v, at);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(s, v, at)?;
        }
        return Ok(());
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let errors: Vec<String> = one
            .iter()
            .filter_map(|s| validate(s, v, at).err())
            .collect();
        return match one.len() - errors.len() {
            1 => Ok(()),
            0 => Err(format!("{at}: matches none of oneOf: {errors:?}")),
            n => Err(format!("{at}: matches {n} schemas of oneOf")),
        };
    }
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}: schema without a type: {schema}"))?;
    match ty {
        "object" => {
            let o = v
                .as_object()
                .ok_or_else(|| format!("{at}: {v} is not an object"))?;
            if schema.get("additionalProperties") == Some(&Value::Bool(true))
                && schema.get("properties").is_none()
            {
                return Ok(());
            }
            let props = properties(schema, at)?;
            let mut got: Vec<&String> = o.keys().collect();
            let mut want: Vec<&String> = props.keys().collect();
            got.sort();
            want.sort();
            if got != want {
                return Err(format!("{at}: fields {got:?}, documented {want:?}"));
            }
            for (k, s) in props {
                validate(s, &o[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        "array" => {
            let a = v
                .as_array()
                .ok_or_else(|| format!("{at}: {v} is not an array"))?;
            let items = schema
                .get("items")
                .ok_or_else(|| format!("{at}: array schema without items"))?;
            for (i, x) in a.iter().enumerate() {
                validate(items, x, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        "string" => {
            let s = v
                .as_str()
                .ok_or_else(|| format!("{at}: {v} is not a string"))?;
            if let Some(e) = schema.get("enum").and_then(Value::as_array) {
                if !e.iter().any(|x| x == v) {
                    return Err(format!("{at}: {s:?} is not one of {e:?}"));
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if !pattern(p)
                    .map_err(|e| format!("{at}: pattern {p}: {e}"))?
                    .is_match(s)
                {
                    return Err(format!("{at}: {s:?} does not match {p}"));
                }
            }
            Ok(())
        }
        "integer" => {
            let n = v
                .as_i64()
                .map(i128::from)
                .or_else(|| v.as_u64().map(i128::from))
                .ok_or_else(|| format!("{at}: {v} is not an integer"))?;
            match schema.get("minimum").and_then(Value::as_i64) {
                Some(m) if n < i128::from(m) => Err(format!("{at}: {n} is below {m}")),
                _ => Ok(()),
            }
        }
        "boolean" if v.is_boolean() => Ok(()),
        "boolean" => Err(format!("{at}: {v} is not a boolean")),
        t => Err(format!("{at}: unknown type {t}")),
    }
}

/// The compiled `pattern` (each compiled once: blocks carry thousands of hex values).
fn pattern(p: &str) -> Result<regex::Regex, regex::Error> {
    static COMPILED: OnceLock<Mutex<BTreeMap<String, regex::Regex>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(re) = compiled.get(p) {
        return Ok(re.clone());
    }
    let re = regex::Regex::new(p)?;
    compiled.insert(p.to_owned(), re.clone());
    Ok(re)
}

/// An object schema's properties, each of them required.
fn properties<'a>(schema: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{at}: object schema without properties (or free-form)"))?;
    let mut required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut listed: Vec<&str> = props.keys().map(String::as_str).collect();
    required.sort_unstable();
    listed.sort_unstable();
    if required != listed {
        return Err(format!(
            "{at}: required {required:?} is not every property {listed:?}"
        ));
    }
    Ok(props)
}

/// `v` decodes as `T` and encodes back to itself.
pub fn round_trips<T: Serialize + DeserializeOwned>(v: &Value, at: &str) -> Result<(), String> {
    let t: T = serde_json::from_value(v.clone())
        .map_err(|e| format!("{at}: not a {}: {e}", std::any::type_name::<T>()))?;
    let back = serde_json::to_value(&t).map_err(|e| format!("{at}: {e}"))?;
    if back != *v {
        return Err(format!(
            "{at}: {} encodes back as {back}, not {v}",
            std::any::type_name::<T>()
        ));
    }
    Ok(())
}

/// Checks the answer `v` with `status` to `method url` against the document and the shared
/// types; panics with what differs.
pub fn check_answer(method: &str, url: &str, status: u16, v: &Value) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let at = format!("{method} {url} -> {status}");
    let Some(template) = template_of(path) else {
        // No such route: the 404 is still an error body.
        assert_eq!(status, 404, "{at}: an undocumented route answered");
        check_error(v, &at);
        return;
    };
    let op = &document()["paths"][template][method];
    let response = &op["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "{at}: status {status} is not documented for {method} {template}"
    );
    let Some(schema) = response["content"]
        .get("application/json")
        .map(|c| &c["schema"])
    else {
        return; // not a JSON answer (page, metrics, events)
    };
    if let Err(e) = validate(schema, v, &at) {
        panic!("the answer differs from the OpenAPI document: {e}\nanswer: {v}");
    }
    let typed = match (template, status) {
        (_, s) if s >= 400 => round_trips::<ErrorBody>(v, &at),
        ("/v1/tx", _) | ("/v1/tx/{id}", _) => round_trips::<TxStatusView>(v, &at),
        ("/v1/blocks/{height}", _) => round_trips::<BlockView>(v, &at),
        ("/v1/blocks", _) => round_trips::<BlockRange>(v, &at),
        ("/v1/periods/{period}", _) => round_trips::<PeriodView>(v, &at),
        ("/v1/accounts/{address}", _) => round_trips::<AccountView>(v, &at),
        ("/v1/meters/{id}", _) => round_trips::<MeterView>(v, &at),
        ("/v1/registry", _) => round_trips::<RegistryView>(v, &at),
        ("/v1/registry/leaves", _) => round_trips::<RegistryLeaves>(v, &at),
        ("/v1/state/{key}", _) if query.contains("proof=true") => round_trips::<StateProof>(v, &at),
        ("/v1/state/{key}", _) => round_trips::<StateValue>(v, &at),
        ("/v1/status", _) => round_trips::<StatusView>(v, &at),
        ("/v1/peer/txs", _) => round_trips::<ForwardOutcome>(v, &at),
        ("/v1/openapi.json", _) => Ok(()),
        (t, s) => Err(format!("{t} {s}: no shared type is known for this answer")),
    };
    if let Err(e) = typed {
        panic!("the answer differs from the shared API types: {e}");
    }
}

/// Checks an error body.
pub fn check_error(v: &Value, at: &str) {
    if let Err(e) =
        validate(component("Error"), v, at).and_then(|()| round_trips::<ErrorBody>(v, at))
    {
        panic!("not an error body: {e}");
    }
}

/// Checks the data of a `commit` event of `/v1/events`.
pub fn check_commit_event(v: &Value) {
    let at = "commit event";
    if let Err(e) =
        validate(component("CommitEvent"), v, at).and_then(|()| round_trips::<CommitEvent>(v, at))
    {
        panic!("{e}");
    }
}

/// Every schema of the document, walked: the strict rules hold for each (objects list all
/// their fields as required or are free-form, nothing untyped, references resolve), and every
/// component is used.
pub fn lint() -> Result<(), String> {
    fn walk(s: &Value, at: &str, used: &mut Vec<String>) -> Result<(), String> {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            resolve(s)?;
            used.push(r.trim_start_matches("#/components/schemas/").to_owned());
            return Ok(());
        }
        for k in ["allOf", "oneOf"] {
            if let Some(list) = s.get(k).and_then(Value::as_array) {
                for (i, x) in list.iter().enumerate() {
                    walk(x, &format!("{at}.{k}[{i}]"), used)?;
                }
                return Ok(());
            }
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") if s.get("additionalProperties") == Some(&Value::Bool(true)) => Ok(()),
            Some("object") => {
                for (k, p) in properties(s, at)? {
                    walk(p, &format!("{at}.{k}"), used)?;
                }
                Ok(())
            }
            Some("array") => walk(
                s.get("items")
                    .ok_or_else(|| format!("{at}: array without items"))?,
                &format!("{at}[]"),
                used,
            ),
            Some("string" | "integer" | "boolean") => Ok(()),
            _ => Err(format!("{at}: schema without a type: {s}")),
        }
    }
    let doc = document();
    let mut used = Vec::new();
    for (path, ops) in doc["paths"].as_object().ok_or("no paths")? {
        for (method, op) in ops.as_object().ok_or("bad path item")? {
            if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                walk(body, &format!("{method} {path} body"), &mut used)?;
            }
            for (status, r) in op["responses"].as_object().ok_or("no responses")? {
                if let Some(s) = r.pointer("/content/application~1json/schema") {
                    walk(s, &format!("{method} {path} {status}"), &mut used)?;
                }
            }
        }
    }
    for (name, s) in doc["components"]["schemas"]
        .as_object()
        .ok_or("no components")?
    {
        walk(s, name, &mut used)?;
    }
    used.push("CommitEvent".into()); // the event stream's data (text/event-stream)
    for name in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !used.contains(name) {
            return Err(format!("component {name} is never used"));
        }
    }
    Ok(())
}
