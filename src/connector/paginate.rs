//! Reading every page of a listing: by page number, by cursor, or by the
//! `Link: <...>; rel="next"` header. The step's output is all pages' items
//! in order. A listing longer than `max_pages` is an error rather than a
//! silently cut list, and so is a cursor that repeats.

use std::collections::HashSet;

use serde_json::Value;

use super::http::{CallContext, HttpRuntime, PageArg};
use super::model::{Connector, Operation, PageKind, Paginate};
use crate::engine::error::StepError;
use crate::expr::Context;

pub(super) struct PagedCall<'a> {
    pub name: &'a str,
    pub connector: &'a Connector,
    pub operation: &'a Operation,
    pub paginate: &'a Paginate,
    pub call: &'a CallContext<'a>,
}

impl HttpRuntime {
    pub(super) async fn call_pages(
        &self,
        paged: &PagedCall<'_>,
        context: Context,
    ) -> Result<Value, StepError> {
        let name = paged.name;
        let mut page = match &paged.paginate.kind {
            PageKind::Number { param, start } => PageArg::Query(param.clone(), start.to_string()),
            PageKind::Cursor { .. } | PageKind::Link => PageArg::None,
        };
        let mut items = Vec::new();
        let mut cursors = HashSet::new();
        for number in 0..paged.paginate.max_pages {
            let answer = self
                .send(
                    name,
                    paged.connector,
                    paged.operation,
                    &context,
                    paged.call,
                    &page,
                )
                .await?;
            // Runs the success condition on every page.
            self.read_answer(
                name,
                &paged.operation.response,
                context.clone(),
                answer.clone(),
            )?;
            let mut scope = context.clone();
            scope.set_shared("response", &answer);
            let found = self.page_items(name, &paged.paginate.items, &scope)?;
            let empty = found.is_empty();
            items.extend(found);

            page = match &paged.paginate.kind {
                PageKind::Number { param, start } if !empty => {
                    PageArg::Query(param.clone(), (start + number as i64 + 1).to_string())
                }
                PageKind::Number { .. } => return Ok(Value::Array(items)),
                PageKind::Cursor { param, next } => {
                    let cursor = match self.scripts.render(next, &scope) {
                        Ok(Value::Null) => return Ok(Value::Array(items)),
                        Ok(Value::String(text)) if text.is_empty() => {
                            return Ok(Value::Array(items));
                        }
                        Ok(Value::String(text)) => text,
                        Ok(other) => other.to_string(),
                        Err(error) => {
                            return Err(StepError::permanent(format!(
                                "{name}: evaluating the next cursor failed: {error}"
                            )));
                        }
                    };
                    if !cursors.insert(cursor.clone()) {
                        let message = format!(
                            "{name}: the cursor `{cursor}` came back twice; stopping instead of looping"
                        );
                        return Err(StepError::permanent(message));
                    }
                    PageArg::Query(param.clone(), cursor)
                }
                PageKind::Link => match next_link(&answer) {
                    Some(url) => PageArg::Url(url),
                    None => return Ok(Value::Array(items)),
                },
            };
        }
        let max = paged.paginate.max_pages;
        Err(StepError::permanent(format!(
            "{name}: more than {max} pages; raise the operation's `max_pages` or narrow the listing"
        )))
    }

    fn page_items(
        &self,
        name: &str,
        items: &crate::expr::Template,
        scope: &Context,
    ) -> Result<Vec<Value>, StepError> {
        match self.scripts.render(items, scope) {
            Ok(Value::Array(list)) => Ok(list),
            Ok(Value::Null) => Ok(Vec::new()),
            Ok(other) => Err(StepError::permanent(format!(
                "{name}: `paginate.items` gave {other}, expected a list"
            ))),
            Err(error) => Err(StepError::permanent(format!(
                "{name}: evaluating `paginate.items` failed: {error}"
            ))),
        }
    }
}

/// Returns the `rel="next"` URL of a response's `Link` header.
fn next_link(answer: &Value) -> Option<String> {
    let header = answer["headers"]["link"].as_str()?;
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|param| {
            param.trim().replace(' ', "") == "rel=\"next\"" || param.trim() == "rel=next"
        });
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_found() {
        let answer = serde_json::json!({ "headers": { "link":
            "<https://shop.example/admin/api/2024-10/products.json?page_info=abc&limit=50>; rel=\"next\", <https://shop.example/x?page_info=z>; rel=\"previous\"" } });
        assert_eq!(
            next_link(&answer).as_deref(),
            Some("https://shop.example/admin/api/2024-10/products.json?page_info=abc&limit=50")
        );
    }

    #[test]
    fn link_header_without_next() {
        let answer =
            serde_json::json!({ "headers": { "link": "<https://a.example/p>; rel=\"previous\"" } });
        assert_eq!(next_link(&answer), None);
        assert_eq!(next_link(&serde_json::json!({ "headers": {} })), None);
    }
}
