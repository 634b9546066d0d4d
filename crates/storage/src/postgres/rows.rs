//! Row → record mapping for the PostgreSQL modules (written once for both
//! backends in `crate::records`).

pub(super) use crate::records::{
    json_text, like_pattern, scopes_text, user_columns_of, API_KEY_COLUMNS, AUDIT_COLUMNS, BATCH_SUMMARY_COLUMNS,
    CODE_COLUMNS, PROJECT_COLUMNS, REDEMPTION_COLUMNS, SEALED_SECRETS_COLUMNS, TOKEN_COLUMNS, TOKEN_COLUMN_COUNT,
    USER_COLUMNS,
};
use sqlx::postgres::PgRow;
use sqlx::{Result, Row};

crate::records::readers!(PgRow, Result, try_get);

/// A code with its position (seq), for paging and exports.
pub(super) fn code_with_seq(r: &PgRow) -> Result<(i64, Code)> {
    Ok((r.try_get(12)?, code(r)?))
}
