//! Can the fleet oversubscribe the server? Every instance may open up to its pool maximum, and
//! PgBouncer holds its own server connections: together they must stay under
//! `max_connections` minus the reserved slots, with room for everything else that connects
//! (migrations, cron jobs, psql, pgvigil). From that, a per-instance maximum that fits, beside
//! what each instance has actually used at its peak.

use serde::Serialize;

use crate::checks::{Finding, Group};

/// One application instance's pool as read from its metrics, or `count` alike instances (a
/// fleet through Prometheus, whose sums are shared equally): a multiplicity, so nothing is
/// allocated per instance a source claims.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceSize {
    /// Its name (host:port, or what the fleet is).
    pub name: String,
    /// How many instances this stands for (1 for an instance read directly).
    pub count: i64,
    /// Its pool maximum (each instance's).
    pub max: i64,
    /// Connections it holds open now, in use and idle (each instance's).
    pub open: i64,
    /// The most it had in use at once in the window (each instance's).
    pub peak: i64,
}

/// What the sizing is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SizingInput {
    /// `max_connections` minus the reserved slots.
    pub usable: i64,
    /// Client connections on the server now (all applications).
    pub server_total: i64,
    /// The application instances.
    pub instances: Vec<InstanceSize>,
    /// Server connections PgBouncer holds now.
    pub bouncer_servers: i64,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizing {
    /// Instances' maximums plus PgBouncer's server connections.
    pub demand: i64,
    /// What clients may use.
    pub usable: i64,
    /// Connections from everything else (server total minus the instances' and PgBouncer's).
    pub others: i64,
    /// `demand + others > usable`: at full load, connections would be refused.
    pub oversubscribed: bool,
    /// The largest per-instance maximum that fits beside PgBouncer and the others.
    pub suggested_max: Option<i64>,
    /// The highest peak any instance reached.
    pub peak: i64,
    /// The instances, as given.
    pub instances: Vec<InstanceSize>,
}

/// Computes the sizing. The arithmetic saturates: figures are bounded where they enter
/// (`remote::bounds`), and a caller's absurd input gives an absurd verdict, never an overflow.
pub fn sizing(input: &SizingInput) -> Sizing {
    let each = |f: fn(&InstanceSize) -> i64| -> i64 {
        input.instances.iter().fold(0i64, |sum, i| {
            sum.saturating_add(f(i).saturating_mul(i.count.max(0)))
        })
    };
    let maxes = each(|i| i.max);
    let open = each(|i| i.open);
    let n = each(|_| 1);
    let others = input
        .server_total
        .saturating_sub(open)
        .saturating_sub(input.bouncer_servers)
        .max(0);
    let demand = maxes.saturating_add(input.bouncer_servers);
    let room = input
        .usable
        .saturating_sub(input.bouncer_servers)
        .saturating_sub(others);
    Sizing {
        demand,
        usable: input.usable,
        others,
        oversubscribed: demand.saturating_add(others) > input.usable,
        suggested_max: (n > 0).then(|| (room / n).max(0)),
        peak: input
            .instances
            .iter()
            .filter(|i| i.count > 0)
            .map(|i| i.peak)
            .max()
            .unwrap_or(0),
        instances: input.instances.clone(),
    }
}

impl Sizing {
    /// The verdict in one word, the same on every face: `fits` or `OVERSUBSCRIBED`.
    pub fn verdict(&self) -> &'static str {
        if self.oversubscribed {
            "OVERSUBSCRIBED"
        } else {
            "fits"
        }
    }

    /// Instances counted (a fleet counts as its instances).
    fn instance_count(&self) -> i64 {
        self.instances
            .iter()
            .fold(0i64, |n, i| n.saturating_add(i.count.max(0)))
    }

    /// The verdict and its figures in a sentence (`check`'s finding).
    pub fn summary(&self) -> String {
        format!(
            "{}: {} instance(s) may open {} connection(s) plus {} from others against {} usable",
            self.verdict(),
            self.instance_count(),
            self.demand,
            self.others,
            self.usable
        )
    }

    /// The verdict and its figures, short (a dashboard row): verdict first, so that a narrow
    /// screen cuts figures, never the verdict.
    pub fn short(&self) -> String {
        format!(
            "{}: {} + {} others of {} usable",
            self.verdict(),
            self.demand,
            self.others,
            self.usable
        )
    }

    /// The per-instance maximum that fits, beside the observed peak.
    pub fn suggestion(&self) -> Option<String> {
        self.suggested_max
            .map(|m| format!("max {m}/instance fits (peak {})", self.peak))
    }

    /// The finding `pool.sizing` for `pgvigil check`.
    pub fn finding(&self) -> Finding {
        let summary = self.summary();
        let mut f = if self.oversubscribed {
            Finding::warn(Group::Pool, "pool.sizing", summary)
        } else {
            Finding::pass(Group::Pool, "pool.sizing", summary)
        };
        for i in &self.instances {
            let (name, each) = match i.count {
                1 => (crate::sanitize::printable(&i.name).into_owned(), ""),
                n => (
                    format!("{} ({n} instances)", crate::sanitize::printable(&i.name)),
                    " each",
                ),
            };
            f = f.detail(format!(
                "{name}: max {}, open {}, peak in use {}{each}",
                i.max, i.open, i.peak
            ));
        }
        if let Some(s) = self.suggested_max
            && self.oversubscribed
        {
            f = f.fix(format!(
                "set each instance's pool maximum to at most {s} (observed peak {}), or raise \
                 max_connections, or put the instances behind PgBouncer",
                self.peak
            ));
        }
        f.data(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(max: i64, open: i64, peak: i64) -> InstanceSize {
        InstanceSize {
            name: "a".into(),
            count: 1,
            max,
            open,
            peak,
        }
    }

    #[test]
    fn sizing_table() {
        // (usable, server total, instances, bouncer) -> (demand, others, oversubscribed, suggested)
        let cases = [
            (
                97,
                10,
                vec![inst(20, 5, 3), inst(20, 5, 4)],
                0,
                (40, 0, false, Some(48)),
            ),
            (
                97,
                40,
                vec![inst(100, 10, 9); 3],
                0,
                (300, 10, true, Some(29)),
            ),
            (
                297,
                50,
                vec![inst(50, 20, 12); 2],
                10,
                (110, 0, false, Some(143)),
            ),
            (97, 0, vec![], 5, (5, 0, false, None)),
            (10, 30, vec![inst(5, 5, 5)], 0, (5, 25, true, Some(0))),
        ];
        for (usable, total, instances, bouncer, want) in cases {
            let s = sizing(&SizingInput {
                usable,
                server_total: total,
                instances,
                bouncer_servers: bouncer,
            });
            assert_eq!(
                (s.demand, s.others, s.oversubscribed, s.suggested_max),
                want,
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_finding_warns_with_a_fix_when_oversubscribed() {
        let s = sizing(&SizingInput {
            usable: 97,
            server_total: 40,
            instances: vec![inst(100, 10, 9); 3],
            bouncer_servers: 0,
        });
        let f = s.finding();
        assert_eq!(f.status, crate::checks::Status::Warn);
        assert!(f.summary.starts_with("OVERSUBSCRIBED"), "{}", f.summary);
        assert!(f.fix.unwrap().contains("at most 29"));
        assert_eq!(s.short(), "OVERSUBSCRIBED: 300 + 10 others of 97 usable");
        assert_eq!(
            s.suggestion().as_deref(),
            Some("max 29/instance fits (peak 9)")
        );
    }

    #[test]
    fn a_fleet_is_one_entry_with_a_count_and_absurd_input_does_not_overflow() {
        let fleet = InstanceSize {
            name: "fleet".into(),
            count: 10_000,
            max: 20,
            open: 5,
            peak: 4,
        };
        let s = sizing(&SizingInput {
            usable: 97,
            server_total: 10,
            instances: vec![fleet.clone()],
            bouncer_servers: 0,
        });
        assert_eq!(
            (s.demand, s.oversubscribed, s.suggested_max),
            (200_000, true, Some(0))
        );
        assert!(
            s.finding()
                .summary
                .starts_with("OVERSUBSCRIBED: 10000 instance(s)")
        );
        assert!(
            s.finding().details[0].contains("fleet (10000 instances): max 20"),
            "{:?}",
            s.finding().details
        );
        let absurd = sizing(&SizingInput {
            usable: 97,
            server_total: i64::MAX,
            instances: vec![InstanceSize {
                count: i64::MAX,
                max: i64::MAX,
                ..fleet
            }],
            bouncer_servers: i64::MAX,
        });
        assert!(absurd.oversubscribed);
    }
}
