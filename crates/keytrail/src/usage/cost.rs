//! What KMS usage would cost on AWS: requests beyond each account's monthly free tier at the
//! symmetric or asymmetric price, and customer managed keys prorated by the hour over the part
//! of the range each key was alive and not pending deletion (spec §2.14).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// AWS prorates key-months hourly over a 730-hour month; projections use the same month.
pub const HOURS_PER_MONTH: f64 = 730.0;
const HOUR_MS: f64 = 3_600_000.0;

/// KMS list prices (USD), data in the config file's `[pricing]`, defaults from spec §2.14.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pricing {
    /// Per customer managed key and month.
    pub key_month: f64,
    /// Per 10,000 requests on symmetric keys.
    pub symmetric_per_10k: f64,
    /// Per 10,000 requests on asymmetric and HMAC keys.
    pub asymmetric_per_10k: f64,
    /// Requests free each month (all regions of an account).
    pub free_requests_per_month: u64,
}

impl Default for Pricing {
    fn default() -> Self {
        Self {
            key_month: 1.0,
            symmetric_per_10k: 0.03,
            asymmetric_per_10k: 0.15,
            free_requests_per_month: 20_000,
        }
    }
}

/// One key's requests in the range.
#[derive(Debug, Clone)]
pub struct KeyRequests {
    pub account_id: String,
    pub symmetric: bool,
    pub requests: i64,
}

/// When a customer managed key was billable: from its creation until it was scheduled for
/// deletion (AWS does not charge keys pending deletion), or without end.
#[derive(Debug, Clone)]
pub struct KeyLife {
    pub account_id: String,
    pub created_ms: i64,
    pub billable_until_ms: Option<i64>,
}

impl KeyLife {
    /// Billable hours of this key within `[start_ms, end_ms)`.
    pub fn hours_within(&self, start_ms: i64, end_ms: i64) -> f64 {
        let from = self.created_ms.max(start_ms);
        let until = self.billable_until_ms.unwrap_or(i64::MAX).min(end_ms);
        (until - from).max(0) as f64 / HOUR_MS
    }

    /// Whether the key is billed at `at_ms` (it exists and is not pending deletion).
    pub fn billable_at(&self, at_ms: i64) -> bool {
        self.created_ms < at_ms && self.billable_until_ms.is_none_or(|until| until > at_ms)
    }
}

/// One account's bill for the range, and the month at the range's pace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountCost {
    pub account_id: String,
    pub requests: i64,
    /// Requests beyond the free tier.
    pub billable_requests: i64,
    pub request_cost_usd: f64,
    pub key_hours: f64,
    pub key_cost_usd: f64,
    pub total_cost_usd: f64,
    /// Requests scaled from the range to a 730-hour month, plus a month of every key billable
    /// at the range's end.
    pub month_projection_usd: f64,
}

/// The per-account table's columns, for [`AccountCost::cells`].
pub const ACCOUNT_COLUMNS: [&str; 8] = [
    "account",
    "requests",
    "beyond free tier",
    "requests $",
    "key hours",
    "keys $",
    "total $",
    "month at this pace $",
];

impl AccountCost {
    /// The account's row of the per-account table, formatted.
    pub fn cells(&self) -> [String; 8] {
        [
            self.account_id.clone(),
            self.requests.to_string(),
            self.billable_requests.to_string(),
            format!("{:.6}", self.request_cost_usd),
            format!("{:.1}", self.key_hours),
            format!("{:.6}", self.key_cost_usd),
            format!("{:.6}", self.total_cost_usd),
            format!("{:.4}", self.month_projection_usd),
        ]
    }
}

/// The cost of requests: the account's free tier first, shared pro rata over its keys, then
/// each key's list price.
fn request_cost(keys: &[&KeyRequests], pricing: &Pricing) -> (i64, f64) {
    let total: i64 = keys.iter().map(|k| k.requests).sum();
    if total <= 0 {
        return (0, 0.0);
    }
    let free = i64::try_from(pricing.free_requests_per_month).unwrap_or(i64::MAX);
    let billable = (total - free).max(0);
    let share = billable as f64 / total as f64;
    let cost = keys
        .iter()
        .map(|k| {
            let per_10k = if k.symmetric {
                pricing.symmetric_per_10k
            } else {
                pricing.asymmetric_per_10k
            };
            k.requests as f64 * share / 10_000.0 * per_10k
        })
        .sum();
    (billable, cost)
}

/// Every account's cost for `[start_ms, end_ms)`, by account id.
pub fn account_costs(
    requests: &[KeyRequests],
    lives: &[KeyLife],
    start_ms: i64,
    end_ms: i64,
    pricing: &Pricing,
) -> Vec<AccountCost> {
    let mut accounts: BTreeMap<&str, (Vec<&KeyRequests>, Vec<&KeyLife>)> = BTreeMap::new();
    for key in requests {
        accounts.entry(&key.account_id).or_default().0.push(key);
    }
    for life in lives {
        accounts.entry(&life.account_id).or_default().1.push(life);
    }
    let range_hours = ((end_ms - start_ms).max(1)) as f64 / HOUR_MS;
    let scale = HOURS_PER_MONTH / range_hours;
    accounts
        .into_iter()
        .map(|(account_id, (keys, lives))| {
            let (billable_requests, request_cost_usd) = request_cost(&keys, pricing);
            let key_hours: f64 = lives.iter().map(|l| l.hours_within(start_ms, end_ms)).sum();
            let key_cost_usd = key_hours / HOURS_PER_MONTH * pricing.key_month;
            let monthly: Vec<KeyRequests> = keys
                .iter()
                .map(|k| KeyRequests {
                    requests: (k.requests as f64 * scale).round() as i64,
                    ..(*k).clone()
                })
                .collect();
            let (_, month_requests_usd) =
                request_cost(&monthly.iter().collect::<Vec<_>>(), pricing);
            let keys_at_end = lives.iter().filter(|l| l.billable_at(end_ms)).count();
            AccountCost {
                account_id: account_id.to_string(),
                requests: keys.iter().map(|k| k.requests).sum(),
                billable_requests,
                request_cost_usd,
                key_hours,
                key_cost_usd,
                total_cost_usd: request_cost_usd + key_cost_usd,
                month_projection_usd: month_requests_usd + keys_at_end as f64 * pricing.key_month,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    fn requests(account: &str, requests: i64, symmetric: bool) -> KeyRequests {
        KeyRequests {
            account_id: account.into(),
            symmetric,
            requests,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn the_free_tier_comes_first_then_the_list_price() {
        let pricing = Pricing::default();
        let cost = |reqs: Vec<KeyRequests>| {
            account_costs(&reqs, &[], 0, 30 * DAY_MS, &pricing)
                .iter()
                .map(|a| a.request_cost_usd)
                .sum::<f64>()
        };
        assert_eq!(cost(vec![requests("1", 20_000, true)]), 0.0);
        // 30,000 requests: 10,000 billable at $0.03 per 10,000.
        assert!(close(cost(vec![requests("1", 30_000, true)]), 0.03));
        // The seed's case: 576 GenerateDataKey a day for 30 days = 17,280 — inside the free tier.
        assert_eq!(cost(vec![requests("1", 576 * 30, true)]), 0.0);
        // Three accounts × two regions: 1,728 a day in all, but each account has its own free
        // tier, so each one's 576 × 30 = 17,280 is free.
        let three = ["1", "2", "3"]
            .iter()
            .map(|a| requests(a, 576 * 30, true))
            .collect();
        assert_eq!(cost(three), 0.0);
        // One account with 1,728 a day: 51,840 a month, 31,840 billable = $0.09552.
        assert!((cost(vec![requests("1", 1_728 * 30, true)]) - 0.095_52).abs() < 1e-9);
        assert!(close(cost(vec![requests("1", 30_000, false)]), 0.15));
    }

    #[test]
    fn keys_are_billed_by_the_hour_they_were_alive_and_not_pending_deletion() {
        let pricing = Pricing::default();
        let day = |created_ms, billable_until_ms| KeyLife {
            account_id: "1".into(),
            created_ms,
            billable_until_ms,
        };
        // Alive all day: 24 of 730 hours.
        let whole = account_costs(&[], &[day(-DAY_MS, None)], 0, DAY_MS, &pricing);
        assert!(close(whole[0].key_hours, 24.0));
        assert!(close(whole[0].key_cost_usd, 24.0 / 730.0));
        assert!(close(whole[0].month_projection_usd, 1.0));
        // Created at 18:00, scheduled for deletion at 21:00 the same day: three hours, and
        // nothing in the month ahead.
        let short = account_costs(
            &[],
            &[day(18 * 3_600_000, Some(21 * 3_600_000))],
            0,
            DAY_MS,
            &pricing,
        );
        assert!(close(short[0].key_hours, 3.0));
        assert!(close(short[0].month_projection_usd, 0.0));
        // Created after the range: nothing.
        let later = account_costs(&[], &[day(2 * DAY_MS, None)], 0, DAY_MS, &pricing);
        assert!(close(later[0].key_cost_usd, 0.0));
    }

    #[test]
    fn a_day_of_the_seed_projects_to_a_month() {
        // One account, two regions, 576 GenerateDataKey in a day with no free tier: the day costs
        // 576 × $0.03 / 10,000 and a 730-hour month 17,520 of them plus the key.
        let pricing = Pricing {
            free_requests_per_month: 0,
            ..Pricing::default()
        };
        let costs = account_costs(
            &[requests("1", 576, true)],
            &[KeyLife {
                account_id: "1".into(),
                created_ms: -1,
                billable_until_ms: None,
            }],
            0,
            DAY_MS,
            &pricing,
        );
        assert!(close(costs[0].request_cost_usd, 0.001_728));
        assert!(close(
            costs[0].month_projection_usd,
            17_520.0 * 0.03 / 10_000.0 + 1.0
        ));
    }
}
