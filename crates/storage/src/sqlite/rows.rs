//! Row → record mapping for the SQLite modules (written once for both
//! backends in `crate::records`).

pub(super) use crate::records::{
    columns_of, json_text, like_pattern, scopes_text, API_KEY_COLUMNS, AUDIT_COLUMNS, BATCH_SUMMARY_COLUMNS,
    CODE_COLUMNS, PROJECT_COLUMNS, REDEMPTION_COLUMNS, SEALED_SECRETS_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMN_COUNT,
    USER_COLUMNS,
};
use rusqlite::Result;

crate::records::readers!(rusqlite::Row<'_>, Result, get);
