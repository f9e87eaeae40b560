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

#[cfg(feature = "scrape")]
impl SizingInput {
    /// The input from one reading of every pool source: the server's view, the instances
    /// read directly (by name), PgBouncer's server connections, and a fleet through Prometheus
    /// (used only when no instance is read directly: one entry standing for its instances,
    /// which count as equal shares of its sums, so nothing is allocated per instance it
    /// claims). `None` without any instance or PgBouncer. `pgvigil check` and the dashboard
    /// both size from this.
    pub fn from_readings<'a>(
        server: &crate::catalog::ServerView,
        apps: impl IntoIterator<Item = (&'a str, &'a super::InstanceFigures)>,
        bouncer: Option<&super::pgbouncer::BouncerView>,
        fleet: Option<&super::FleetFigures>,
    ) -> Option<SizingInput> {
        let mut instances: Vec<InstanceSize> = apps
            .into_iter()
            .map(|(name, f)| InstanceSize::of_instance(name, f))
            .collect();
        if instances.is_empty()
            && let Some(f) = fleet.and_then(InstanceSize::of_fleet)
        {
            instances.push(f);
        }
        if instances.is_empty() && bouncer.is_none() {
            return None;
        }
        Some(SizingInput {
            usable: server.usable(),
            server_total: server.total,
            instances,
            bouncer_servers: bouncer.map_or(0, |b| {
                b.pools
                    .iter()
                    .map(|p| p.sv_active + p.sv_idle + p.sv_used)
                    .sum()
            }),
        })
    }
}

// Figures were checked where they entered (whole numbers within `remote::bounds`), so the
// conversions below are exact.
#[cfg(feature = "scrape")]
impl InstanceSize {
    /// An instance read directly.
    pub fn of_instance(name: &str, figures: &super::InstanceFigures) -> InstanceSize {
        InstanceSize {
            name: name.to_string(),
            count: 1,
            max: figures.reading.max.round() as i64,
            open: (figures.reading.active + figures.reading.idle).round() as i64,
            peak: figures.peak_active.round() as i64,
        }
    }

    /// A fleet's equal shares; `None` when no instance reports a pool maximum. Its peak is
    /// what is in use now (Prometheus' instant query has no window).
    pub fn of_fleet(fleet: &super::FleetFigures) -> Option<InstanceSize> {
        if fleet.instances < 1 {
            return None;
        }
        let n = f64::from(fleet.instances);
        Some(InstanceSize {
            name: "fleet through Prometheus".to_string(),
            count: i64::from(fleet.instances),
            max: (fleet.max / n).round() as i64,
            open: (fleet.active / n).round() as i64,
            peak: (fleet.active / n).round() as i64,
        })
    }
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

    #[cfg(feature = "scrape")]
    #[test]
    fn the_input_takes_instances_read_directly_over_a_fleet_and_needs_a_source() {
        use crate::remote::{FleetFigures, InstanceFigures, MetricFamily, PoolReading};
        let server: crate::catalog::ServerView = serde_json::from_value(serde_json::json!({
            "server_time": "2026-12-01T00:00:00Z", "version": "15.8",
            "max_connections": 100, "reserved_connections": 3, "total": 12,
            "groups": [], "longest_transaction": null, "lock_waiters": 0, "lock_waits": [],
        }))
        .unwrap();
        let figures = InstanceFigures {
            reading: PoolReading {
                family: MetricFamily::Pgvigil,
                active: 3.0,
                idle: 2.0,
                max: 20.0,
                pending: 0.0,
                timeouts_total: 0.0,
                leaked: None,
                acquire_buckets: Vec::new(),
                acquire_p95_reported: None,
                pools: Vec::new(),
            },
            acquire_p95: None,
            timeouts_per_minute: 0.0,
            peak_active: 7.0,
        };
        let fleet = FleetFigures {
            instances: 4,
            active: 10.0,
            max: 80.0,
            ..FleetFigures::default()
        };
        let direct =
            SizingInput::from_readings(&server, [("app-1", &figures)], None, Some(&fleet)).unwrap();
        assert_eq!(direct.usable, 97);
        assert_eq!(direct.server_total, 12);
        assert_eq!(
            direct.instances,
            vec![InstanceSize {
                name: "app-1".into(),
                count: 1,
                max: 20,
                open: 5,
                peak: 7,
            }]
        );
        let through_fleet = SizingInput::from_readings(&server, [], None, Some(&fleet)).unwrap();
        assert_eq!(through_fleet.instances.len(), 1);
        let share = &through_fleet.instances[0];
        assert_eq!((share.count, share.max, share.open), (4, 20, 3));
        let empty_fleet = FleetFigures::default();
        assert_eq!(
            SizingInput::from_readings(&server, [], None, Some(&empty_fleet)),
            None,
            "no pool figures: nothing to size"
        );
    }

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
