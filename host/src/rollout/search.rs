//! Job search: the structured query vendors' job logs are filtered with (XLINK's `ota-logs`
//! with `$in`, `$lt`, `$like`, ...), over every campaign job of one tenant. Fields and
//! operators are closed enums that map to fixed SQL text; every value a client sent becomes a
//! bound parameter, so no input ever becomes SQL.

use sqlx::Row;

use super::campaigns::{Job, job_from};
use super::job::JobState;
use super::{Rollout, RolloutError};

/// Most conditions, ordering keys and `in` values one search may carry.
const MAX_CONDITIONS: usize = 16;
const MAX_ORDER: usize = 4;
const MAX_IN_VALUES: usize = 500;

/// A fact of a job a search names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    JobId,
    CampaignId,
    DeviceId,
    DeviceMac,
    DeviceSn,
    UpdatedAt,
}

impl Field {
    /// The column, from the fixed join below (never client text).
    fn column(self) -> &'static str {
        match self {
            Field::JobId => "j.id",
            Field::CampaignId => "j.campaign_id",
            Field::DeviceId => "j.device_id",
            Field::DeviceMac => "d.mac",
            Field::DeviceSn => "d.sn",
            Field::UpdatedAt => "j.updated_at",
        }
    }

    fn numeric(self) -> bool {
        !matches!(self, Field::DeviceMac | Field::DeviceSn)
    }

    fn name(self) -> &'static str {
        match self {
            Field::JobId => "job id",
            Field::CampaignId => "campaign id",
            Field::DeviceId => "device id",
            Field::DeviceMac => "device mac",
            Field::DeviceSn => "device sn",
            Field::UpdatedAt => "updated-at",
        }
    }
}

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    In,
    Lt,
    Lte,
    Gt,
    Gte,
    Like,
}

impl Operator {
    /// The operator as messages name it (the spelling of query languages such as XLINK's).
    fn name(self) -> &'static str {
        match self {
            Operator::Eq => "$eq",
            Operator::In => "$in",
            Operator::Lt => "$lt",
            Operator::Lte => "$lte",
            Operator::Gt => "$gt",
            Operator::Gte => "$gte",
            Operator::Like => "$like",
        }
    }
}

/// `field operator values`, values as the client gave them.
#[derive(Debug, Clone)]
pub struct Condition {
    pub field: Field,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A whole search: conditions (all must hold), ordering keys (`true` = descending), and the
/// job states wanted (any when empty).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub conditions: Vec<Condition>,
    pub order: Vec<(Field, bool)>,
    pub states: Vec<JobState>,
}

/// A job found, with the device and product facts a job log shows beside it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub job: Job,
    pub device_sn: String,
    pub device_mac: Option<String>,
    pub product_id: i64,
    /// The campaign's module and identify.
    pub module: String,
    pub identify: i64,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Int(i64),
    Text(String),
}

/// The WHERE and ORDER BY text with its arguments, `$1` being the tenant.
#[derive(Debug)]
struct Sql {
    filter: String,
    order: String,
    args: Vec<Arg>,
}

/// A case-insensitive "contains" pattern for `LOWER(col) LIKE … ESCAPE '\'`: `%`, `_` and
/// the escape character itself match literally inside `value`.
pub(crate) fn like_pattern(value: &str) -> String {
    let mut p = String::with_capacity(value.len() + 2);
    p.push('%');
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p.to_lowercase()
}

fn build(only_device: Option<i64>, q: &Query) -> Result<Sql, RolloutError> {
    let invalid = |m: String| Err(RolloutError::Invalid(m));
    if q.conditions.len() > MAX_CONDITIONS {
        return invalid(format!("at most {MAX_CONDITIONS} conditions"));
    }
    if q.order.len() > MAX_ORDER {
        return invalid(format!("at most {MAX_ORDER} ordering keys"));
    }
    let mut args = vec![];
    let next = |a: Arg, args: &mut Vec<Arg>| {
        args.push(a);
        format!("${}", args.len() + 1)
    };
    let mut filter = String::from("c.tenant_id = $1 AND j.kind = 'campaign'");
    if let Some(d) = only_device {
        filter += &format!(" AND j.device_id = {}", next(Arg::Int(d), &mut args));
    }
    if !q.states.is_empty() {
        let list: Vec<String> = q
            .states
            .iter()
            .map(|s| next(Arg::Text(s.as_str().into()), &mut args))
            .collect();
        filter += &format!(" AND j.state IN ({})", list.join(", "));
    }
    for c in &q.conditions {
        let field = c.field;
        let arity_ok = match c.operator {
            Operator::In => (1..=MAX_IN_VALUES).contains(&c.values.len()),
            _ => c.values.len() == 1,
        };
        if !arity_ok {
            return invalid(format!(
                "{} on {} takes {}",
                c.operator.name(),
                field.name(),
                if c.operator == Operator::In {
                    "1-500 values"
                } else {
                    "exactly one value"
                }
            ));
        }
        let mut values = vec![];
        for v in &c.values {
            values.push(if field.numeric() {
                match v.trim().parse::<i64>() {
                    Ok(n) => Arg::Int(n),
                    Err(_) => {
                        return invalid(format!("{} takes integers, not {v:?}", field.name()));
                    }
                }
            } else {
                Arg::Text(v.clone())
            });
        }
        let col = field.column();
        let cond = match c.operator {
            Operator::Like => {
                if field.numeric() {
                    return invalid(format!("like applies to text fields, not {}", field.name()));
                }
                let p = next(Arg::Text(like_pattern(&c.values[0])), &mut args);
                format!("LOWER({col}) LIKE {p} ESCAPE '\\'")
            }
            Operator::In => {
                let list: Vec<String> = values.into_iter().map(|v| next(v, &mut args)).collect();
                format!("{col} IN ({})", list.join(", "))
            }
            op => {
                let sym = match op {
                    Operator::Eq => "=",
                    Operator::Lt => "<",
                    Operator::Lte => "<=",
                    Operator::Gt => ">",
                    _ => ">=",
                };
                let value = values.into_iter().next().unwrap_or(Arg::Int(0));
                format!("{col} {sym} {}", next(value, &mut args))
            }
        };
        filter += &format!(" AND {cond}");
    }
    let mut order: Vec<String> = q
        .order
        .iter()
        .map(|(f, desc)| format!("{} {}", f.column(), if *desc { "DESC" } else { "ASC" }))
        .collect();
    order.push("j.id ASC".into());
    Ok(Sql {
        filter,
        order: order.join(", "),
        args,
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The tenant as `$1`, then the search's arguments in order.
fn bind_args<'q>(mut query: AnyQuery<'q>, tenant_id: i64, args: &[Arg]) -> AnyQuery<'q> {
    query = query.bind(tenant_id);
    for a in args {
        query = match a {
            Arg::Int(n) => query.bind(*n),
            Arg::Text(t) => query.bind(t.clone()),
        };
    }
    query
}

const FROM: &str = "FROM jobs j JOIN campaigns c ON c.id = j.campaign_id \
    JOIN devices d ON d.id = j.device_id";

impl Rollout {
    /// Search a tenant's campaign jobs (only `only_device`'s when given); answers one window
    /// and how many match in all.
    pub async fn search_jobs(
        &self,
        tenant_id: i64,
        only_device: Option<i64>,
        q: &Query,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Hit>, i64), RolloutError> {
        let sql = build(only_device, q)?;
        let count = format!("SELECT COUNT(*) {FROM} WHERE {}", sql.filter);
        let n = sql.args.len() + 1;
        let select = format!(
            "SELECT j.id, j.campaign_id, j.device_id, j.state, j.previous_state, j.retry_count, \
               j.result_code, j.result_text, j.version_before, j.version_after, j.created_at, \
               j.updated_at, j.deadline_at, d.sn, d.mac, c.product_id, c.module, c.identify {FROM} \
             WHERE {} \
             ORDER BY {} LIMIT ${} OFFSET ${}",
            sql.filter,
            sql.order,
            n + 1,
            n + 2
        );
        let total: i64 = bind_args(sqlx::query(&count), tenant_id, &sql.args)
            .fetch_one(self.db.pool())
            .await?
            .get(0);
        let rows = bind_args(sqlx::query(&select), tenant_id, &sql.args)
            .bind(limit)
            .bind(offset)
            .fetch_all(self.db.pool())
            .await?;
        let hits = rows
            .iter()
            .map(|r| Hit {
                job: job_from(r),
                device_sn: r.get(13),
                device_mac: r.get(14),
                product_id: r.get(15),
                module: r.get(16),
                identify: r.get(17),
            })
            .collect();
        Ok((hits, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(field: Field, operator: Operator, values: &[&str]) -> Condition {
        Condition {
            field,
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn query(conditions: Vec<Condition>) -> Query {
        Query {
            conditions,
            ..Query::default()
        }
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let evil = "'; DROP TABLE jobs; --";
        let sql = build(
            None,
            &query(vec![
                cond(Field::DeviceSn, Operator::Eq, &[evil]),
                cond(Field::DeviceMac, Operator::In, &["a", evil]),
            ]),
        )
        .unwrap();
        assert!(!sql.filter.contains("DROP"), "{}", sql.filter);
        assert_eq!(
            sql.filter,
            "c.tenant_id = $1 AND j.kind = 'campaign' AND d.sn = $2 AND d.mac IN ($3, $4)"
        );
        assert_eq!(sql.args[0], Arg::Text(evil.into()));
    }

    #[test]
    fn like_matches_wildcards_literally() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
        let sql = build(
            None,
            &query(vec![cond(Field::DeviceSn, Operator::Like, &["AB%"])]),
        )
        .unwrap();
        assert!(sql.filter.ends_with("LOWER(d.sn) LIKE $2 ESCAPE '\\'"));
        assert_eq!(sql.args, vec![Arg::Text("%ab\\%%".into())]);
    }

    #[test]
    fn numbers_must_parse_and_arity_holds() {
        let bad = [
            cond(Field::CampaignId, Operator::Lt, &["abc"]),
            cond(Field::CampaignId, Operator::Like, &["1"]),
            cond(Field::DeviceId, Operator::Eq, &["1", "2"]),
            cond(Field::DeviceId, Operator::In, &[]),
        ];
        for c in bad {
            let why = format!("{c:?}");
            assert!(
                matches!(build(None, &query(vec![c])), Err(RolloutError::Invalid(_))),
                "{why}"
            );
        }
        let sql = build(
            Some(7),
            &Query {
                conditions: vec![cond(Field::CampaignId, Operator::Gte, &[" 12 "])],
                order: vec![(Field::UpdatedAt, true)],
                states: vec![JobState::Succeeded],
            },
        )
        .unwrap();
        assert_eq!(
            sql.filter,
            "c.tenant_id = $1 AND j.kind = 'campaign' AND j.device_id = $2 \
             AND j.state IN ($3) AND j.campaign_id >= $4"
        );
        assert_eq!(sql.order, "j.updated_at DESC, j.id ASC");
        assert_eq!(
            sql.args,
            vec![Arg::Int(7), Arg::Text("succeeded".into()), Arg::Int(12)]
        );
    }
}
