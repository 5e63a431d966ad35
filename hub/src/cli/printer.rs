//! How the client commands print objects: the `-o` formats (`json`, `yaml`, `wide`,
//! `name`, `jsonpath=…`, `custom-columns=…`) and `--no-headers`, in one place for every
//! resource type. A type contributes only its kubectl name and its table
//! ([`View`]); lists print as kubectl's `List`, a named object as itself.

use std::str::FromStr;

use serde_json::{Value, json};

use super::client::CliError;
use super::jsonpath::{Path, Template};
use super::output::table;

/// An `-o` format.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// A table with more columns.
    Wide,
    /// `kind.group/name`, one line per object.
    Name,
    /// A JSONPath template ([`Template`]).
    JsonPath(Template),
    /// Columns `HEADER:PATH,…`.
    CustomColumns(Vec<(String, Path)>),
}

/// The formats `-o` accepts, for messages and help.
pub const FORMATS: &str = "json, yaml, wide, name, jsonpath=TEMPLATE, custom-columns=SPEC";

impl FromStr for Output {
    type Err = String;

    fn from_str(s: &str) -> Result<Output, String> {
        if let Some(t) = s
            .strip_prefix("jsonpath=")
            .or_else(|| s.strip_prefix("jsonpath-as-json="))
        {
            return Template::parse(t)
                .map(Output::JsonPath)
                .map_err(|e| e.to_string());
        }
        if let Some(spec) = s.strip_prefix("custom-columns=") {
            return parse_columns(spec).map(Output::CustomColumns);
        }
        match s {
            "json" => Ok(Output::Json),
            "yaml" => Ok(Output::Yaml),
            "wide" => Ok(Output::Wide),
            "name" => Ok(Output::Name),
            other => Err(format!(
                "unable to match a printer suitable for the output format {other:?}, \
                 the allowed formats are: {FORMATS}"
            )),
        }
    }
}

/// `NAME:.metadata.name,STATUS:.status.phase`.
fn parse_columns(spec: &str) -> Result<Vec<(String, Path)>, String> {
    let mut columns = Vec::new();
    for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
        let (header, path) = part.split_once(':').ok_or_else(|| {
            format!("custom-columns: {part:?} is not HEADER:PATH (e.g. NAME:.metadata.name)")
        })?;
        columns.push((
            header.to_owned(),
            Path::parse(path).map_err(|e| e.to_string())?,
        ));
    }
    if columns.is_empty() {
        return Err("custom-columns needs at least one HEADER:PATH".into());
    }
    Ok(columns)
}

/// What a resource type contributes to printing.
pub struct View<'a> {
    /// kubectl's `resource.group` (`-o name` prints `<kubectl_name>/<name>`).
    pub kubectl_name: &'a str,
    /// The table of some objects (`true`: `-o wide`), header line first.
    pub table: &'a dyn Fn(&[Value], bool) -> String,
}

/// An object's name (`metadata.name`, or `name` for the hub's own cluster records).
pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `-o` and `--no-headers` together.
#[derive(Debug, Clone, Default)]
pub struct Printer {
    /// The format (none: the table).
    pub output: Option<Output>,
    /// Tables without their header line.
    pub no_headers: bool,
}

impl Printer {
    /// Renders `items`: as one object when `single` (a named get), else as a list.
    pub fn render(&self, view: &View, items: &[Value], single: bool) -> Result<String, CliError> {
        let whole = || match (single, items.first()) {
            (true, Some(one)) => one.clone(),
            _ => json!({"apiVersion": "v1", "kind": "List", "items": items}),
        };
        Ok(match &self.output {
            Some(Output::Json) => {
                let mut s = serde_json::to_string_pretty(&whole()).unwrap_or_default();
                s.push('\n');
                s
            }
            Some(Output::Yaml) => {
                serde_norway::to_string(&whole()).map_err(|e| CliError::Input(e.to_string()))?
            }
            Some(Output::Name) => items
                .iter()
                .map(|v| format!("{}/{}\n", view.kubectl_name, name_of(v)))
                .collect(),
            Some(Output::JsonPath(t)) => t.render(&whole()),
            Some(Output::CustomColumns(columns)) => {
                let headers: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|v| columns.iter().map(|(_, p)| column(p, v)).collect())
                    .collect();
                self.headers(table(&headers, &rows))
            }
            Some(Output::Wide) => self.headers((view.table)(items, true)),
            None => self.headers((view.table)(items, false)),
        })
    }

    /// Prints a list; an empty one as a table says so on standard error, as kubectl.
    pub fn print_list(&self, view: &View, items: &[Value]) -> Result<(), CliError> {
        if items.is_empty() && self.is_table() {
            eprintln!("No resources found");
            return Ok(());
        }
        print!("{}", self.render(view, items, false)?);
        Ok(())
    }

    /// Whether the format is a table (plain, wide or custom columns).
    pub fn is_table(&self) -> bool {
        matches!(
            self.output,
            None | Some(Output::Wide) | Some(Output::CustomColumns(_))
        )
    }

    fn headers(&self, text: String) -> String {
        if self.no_headers {
            text.split_once('\n')
                .map(|(_, rows)| rows.to_owned())
                .unwrap_or_default()
        } else {
            text
        }
    }
}

/// One custom-columns cell: the path's values comma-separated, `<none>` without any.
fn column(path: &Path, v: &Value) -> String {
    let values = path.eval(v);
    if values.is_empty() {
        return "<none>".into();
    }
    values
        .iter()
        .map(|x| super::jsonpath::show(x))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_table(items: &[Value], wide: bool) -> String {
        let rows: Vec<Vec<String>> = items.iter().map(|v| vec![name_of(v).to_owned()]).collect();
        table(&[if wide { "NAME-WIDE" } else { "NAME" }], &rows)
    }

    fn render(output: &str, no_headers: bool, single: bool) -> String {
        let items = [
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}}),
            json!({"metadata": {"name": "b"}}),
        ];
        let items = if single { &items[..1] } else { &items[..] };
        let printer = Printer {
            output: (!output.is_empty()).then(|| output.parse().unwrap()),
            no_headers,
        };
        let view = View {
            kubectl_name: "thing.example.io",
            table: &view_table,
        };
        printer.render(&view, items, single).unwrap()
    }

    #[test]
    fn every_format() {
        assert_eq!(render("", false, false), "NAME\na\nb\n");
        assert_eq!(render("", true, false), "a\nb\n");
        assert_eq!(render("wide", false, false), "NAME-WIDE\na\nb\n");
        assert_eq!(
            render("name", false, false),
            "thing.example.io/a\nthing.example.io/b\n"
        );
        assert_eq!(
            render("jsonpath={.items[*].metadata.name}", false, false),
            "a b"
        );
        assert_eq!(render("jsonpath={.metadata.name}", false, true), "a");
        assert_eq!(
            render(
                "custom-columns=N:.metadata.name,X:{.metadata.labels.x}",
                false,
                false
            ),
            "N   X\na   1\nb   <none>\n"
        );
        assert_eq!(
            render("custom-columns=N:.metadata.name", true, false),
            "a\nb\n"
        );
        let list: Value = serde_json::from_str(&render("json", false, false)).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][1]["metadata"]["name"], "b");
        let one: Value = serde_norway::from_str(&render("yaml", false, true)).unwrap();
        assert_eq!(one["metadata"]["name"], "a");
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(
            "table"
                .parse::<Output>()
                .unwrap_err()
                .contains("allowed formats")
        );
        assert!("custom-columns=NAME".parse::<Output>().is_err());
        assert!("jsonpath={.a".parse::<Output>().is_err());
    }
}
