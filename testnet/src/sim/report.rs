//! Results of runs and their per-configuration summary.

use std::fmt;
use std::ops::Range;

use engine::types::Round;

use std::collections::BTreeMap;

use super::checks::{Property, Violation};
use super::config::SimConfig;
use super::runner::run;

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The seed that reproduces this run.
    pub seed: u64,
    /// Heights (from 1) that every honest validator decided.
    pub heights_decided: u64,
    /// Per height decided by some honest validator: the highest decision round.
    pub rounds: Vec<Round>,
    /// Distinct equivocations reported by honest validators.
    pub evidence: u64,
    /// Violated properties (empty for a good run).
    pub violations: Vec<Violation>,
    /// Events processed.
    pub events: u64,
    /// Simulated time at the end, in milliseconds.
    pub sim_time_ms: u64,
    /// ed25519 verifications actually computed (memo misses).
    pub signatures_verified: u64,
    /// The message trace, when the configuration asked for it.
    pub trace: Vec<String>,
}

/// The aggregate over the seeds of one configuration.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The configuration, described.
    pub config: String,
    /// Validators.
    pub validators: usize,
    /// Byzantine validators.
    pub byzantine: usize,
    /// Seeds run.
    pub seeds: u64,
    /// Heights decided by all honest validators, summed over seeds.
    pub heights_decided: u64,
    /// Average over decided heights of the decision round.
    pub rounds_avg: f64,
    /// Largest decision round.
    pub rounds_max: Round,
    /// Equivocations reported, summed over seeds.
    pub evidence: u64,
    /// Seeds with at least one violation.
    pub violating_seeds: u64,
    /// The first violating seed and its first violation.
    pub first_violation: Option<(u64, Violation)>,
    /// Per violated property: how many seeds violate it, and the first one.
    pub by_property: BTreeMap<Property, (u64, u64, Violation)>,
    /// Events processed, summed over seeds.
    pub events: u64,
}

impl Summary {
    /// One JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "config": self.config,
            "validators": self.validators,
            "byzantine": self.byzantine,
            "seeds": self.seeds,
            "heights_decided": self.heights_decided,
            "rounds_per_height_avg": self.rounds_avg,
            "rounds_per_height_max": self.rounds_max,
            "evidence": self.evidence,
            "events": self.events,
            "violations": self.violating_seeds,
            "violations_by_property": self.by_property.iter().map(|(p, (count, seed, _))| {
                (p.to_string(), serde_json::json!({"seeds": count, "first_seed": seed}))
            }).collect::<serde_json::Map<_, _>>(),
            "first_violation": self.first_violation.as_ref().map(|(seed, v)| serde_json::json!({
                "seed": seed,
                "property": v.property.to_string(),
                "time_ms": v.time_ms,
                "detail": v.detail,
            })),
        })
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "validators={} byzantine={} seeds={} heights_decided={} rounds/height avg={:.2} max={} evidence={} violations={} [{}]",
            self.validators,
            self.byzantine,
            self.seeds,
            self.heights_decided,
            self.rounds_avg,
            self.rounds_max,
            self.evidence,
            self.violating_seeds,
            self.config
        )?;
        for (p, (count, seed, v)) in &self.by_property {
            write!(f, "\n  {p}: {count} seeds, first seed {seed}: {v}")?;
        }
        Ok(())
    }
}

/// Runs `seeds` of `cfg` and summarizes; with `stop_at_safety_violation` it
/// stops at the first seed that violates agreement or validity (for tests
/// that expect one).
pub fn run_seeds(
    cfg: &SimConfig,
    seeds: Range<u64>,
    stop_at_safety_violation: bool,
) -> Result<Summary, String> {
    let mut s = Summary {
        config: cfg.describe(),
        validators: cfg.validators,
        byzantine: cfg.byzantine,
        seeds: 0,
        heights_decided: 0,
        rounds_avg: 0.0,
        rounds_max: 0,
        evidence: 0,
        violating_seeds: 0,
        first_violation: None,
        by_property: BTreeMap::new(),
        events: 0,
    };
    let mut round_sum = 0u64;
    let mut round_count = 0u64;
    for seed in seeds {
        let r = run(cfg, seed)?;
        s.seeds += 1;
        s.heights_decided += r.heights_decided;
        s.evidence += r.evidence;
        s.events += r.events;
        for round in &r.rounds {
            round_sum += u64::from(*round);
            round_count += 1;
            s.rounds_max = s.rounds_max.max(*round);
        }
        let mut props: Vec<Property> = r.violations.iter().map(|v| v.property).collect();
        props.dedup();
        for v in &r.violations {
            if props.contains(&v.property) {
                props.retain(|p| *p != v.property);
                s.by_property
                    .entry(v.property)
                    .and_modify(|e| e.0 += 1)
                    .or_insert((1, seed, v.clone()));
            }
        }
        if let Some(v) = r.violations.first() {
            s.violating_seeds += 1;
            if s.first_violation.is_none() {
                s.first_violation = Some((seed, v.clone()));
            }
            if stop_at_safety_violation && r.violations.iter().any(|v| v.property.is_safety()) {
                break;
            }
        }
    }
    if round_count > 0 {
        s.rounds_avg = round_sum as f64 / round_count as f64;
    }
    Ok(s)
}
