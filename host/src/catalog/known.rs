//! Products kept in memory once read. A product's id, tenant, serial number, name and
//! creation time never change and no product is ever deleted, so a remembered product can
//! never be stale: every check-in, signed call and offer that names one reads it here after
//! the first time. Only products found are kept (one created on another replica is read
//! when first named), and at most [`KEEP_AT_MOST`] of them.

use std::collections::HashMap;
use std::sync::RwLock;

use super::Product;

/// Past this many products, further ones are read each time rather than remembered.
const KEEP_AT_MOST: usize = 10_000;

/// Products by tenant and serial number, and by id.
#[derive(Default)]
pub struct KnownProducts(RwLock<Known>);

#[derive(Default)]
struct Known {
    by_sn: HashMap<i64, HashMap<String, Product>>,
    by_id: HashMap<i64, Product>,
}

impl KnownProducts {
    /// The tenant's product `sn`, if read before.
    pub fn by_sn(&self, tenant_id: i64, sn: &str) -> Option<Product> {
        let known = self.0.read().ok()?;
        known.by_sn.get(&tenant_id)?.get(sn).cloned()
    }

    /// Product `id`, if read before.
    pub fn by_id(&self, id: i64) -> Option<Product> {
        self.0.read().ok()?.by_id.get(&id).cloned()
    }

    /// Remember a product just read or created.
    pub fn keep(&self, p: &Product) {
        let Ok(mut known) = self.0.write() else {
            return;
        };
        if known.by_id.len() >= KEEP_AT_MOST || known.by_id.contains_key(&p.id) {
            return;
        }
        known.by_id.insert(p.id, p.clone());
        known
            .by_sn
            .entry(p.tenant_id)
            .or_default()
            .insert(p.sn.clone(), p.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: i64, tenant_id: i64, sn: &str) -> Product {
        Product {
            id,
            tenant_id,
            sn: sn.into(),
            name: sn.into(),
            created_at: 1,
        }
    }

    #[test]
    fn found_by_tenant_and_serial_number_or_id_only() {
        let known = KnownProducts::default();
        assert_eq!(known.by_sn(1, "P"), None);
        known.keep(&product(7, 1, "P"));
        assert_eq!(known.by_sn(1, "P"), Some(product(7, 1, "P")));
        assert_eq!(known.by_id(7), Some(product(7, 1, "P")));
        // Another tenant's product of the same serial number is another product.
        assert_eq!(known.by_sn(2, "P"), None);
        assert_eq!(known.by_sn(1, "p"), None);
    }

    #[test]
    fn bounded() {
        let known = KnownProducts::default();
        for id in 0..KEEP_AT_MOST as i64 + 5 {
            known.keep(&product(id, 1, &format!("P{id}")));
        }
        assert!(known.by_id(0).is_some());
        assert_eq!(known.by_id(KEEP_AT_MOST as i64), None);
        assert_eq!(known.by_sn(1, &format!("P{KEEP_AT_MOST}")), None);
    }
}
