//! Attributes: name/value facts a dialect keeps about an object the common record has no field
//! for (a product's protocol, a release's free-text size, a campaign's vendor flags). Each
//! owning module names its own table; this is the one way to check, read and write them.

use sqlx::Row;

use super::Db;

/// One owner's attribute table: the table and its owner column (fixed names, never input).
#[derive(Debug, Clone, Copy)]
pub struct AttributeTable {
    pub table: &'static str,
    pub owner: &'static str,
}

impl AttributeTable {
    /// One owner's attributes, sorted by name.
    pub async fn read(&self, db: &Db, owner_id: i64) -> Result<Vec<(String, String)>, sqlx::Error> {
        let (table, owner) = (self.table, self.owner);
        let rows = db
            .read_all(
                sqlx::query(&format!(
                    "SELECT name, value FROM {table} WHERE {owner} = $1 ORDER BY name"
                ))
                .bind(owner_id),
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Set (`Some`) or remove (`None`) attributes of one owner in one transaction; call
    /// [`check`] first.
    pub async fn write(
        &self,
        db: &Db,
        owner_id: i64,
        changes: &[(String, Option<String>)],
    ) -> Result<(), sqlx::Error> {
        let (table, owner) = (self.table, self.owner);
        let upsert = format!(
            "INSERT INTO {table} ({owner}, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT ({owner}, name) DO UPDATE SET value = excluded.value"
        );
        let delete = format!("DELETE FROM {table} WHERE {owner} = $1 AND name = $2");
        let mut tx = db.pool().begin().await?;
        for (name, value) in changes {
            let q = match value {
                Some(v) => sqlx::query(&upsert).bind(owner_id).bind(name).bind(v),
                None => sqlx::query(&delete).bind(owner_id).bind(name),
            };
            q.execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}

/// Attribute names are 1-64 characters of `[A-Za-z0-9._-]` (so a dialect can namespace them,
/// `ctwing.protocol`), values at most 1024 bytes. The error says which rule broke.
pub fn check(changes: &[(String, Option<String>)]) -> Result<(), String> {
    for (name, value) in changes {
        let ok_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok_name {
            return Err(format!(
                "attribute name {name:?} must be 1-64 characters of [A-Za-z0-9._-]"
            ));
        }
        if value.as_ref().is_some_and(|v| v.len() > 1024) {
            return Err(format!("attribute {name} is longer than 1024 bytes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn names_and_values_are_bounded() {
        assert!(check(&[("ctwing.protocol".into(), Some("mqtt".into()))]).is_ok());
        assert!(check(&[("a b".into(), None)]).is_err());
        assert!(check(&[("".into(), None)]).is_err());
        assert!(check(&[("x".repeat(65), None)]).is_err());
        assert!(check(&[("v".into(), Some("x".repeat(1025)))]).is_err());
    }
}
