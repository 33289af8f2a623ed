//! Each deliberately broken core (feature `mutants`) must be caught: the
//! simulator finds an agreement or validity violation within CI's seed budget.
#![cfg(feature = "mutants")]

use engine::consensus::mutants::Mutant;
use testnet::sim::scenarios::attack_scenarios;
use testnet::sim::{run_seeds, Property};

fn caught(mutant: Mutant) {
    let name = format!("{mutant:?}");
    let mut report = Vec::new();
    for s in attack_scenarios(&name) {
        let mut cfg = s.config.clone();
        cfg.mutant = Some(mutant);
        let summary = run_seeds(&cfg, 0..s.seeds, true).expect("valid configuration");
        println!("{name} / {}: {summary}", s.name);
        let safety = summary
            .by_property
            .iter()
            .find(|(p, _)| matches!(p, Property::Agreement | Property::Validity));
        if let Some((_, (count, seed, v))) = safety {
            println!(
                "{name} caught by {} with seed {seed} ({count} seeds): {v}",
                s.name
            );
            return;
        }
        report.push(format!(
            "{}: no agreement or validity violation in {} seeds",
            s.name, summary.seeds
        ));
    }
    panic!("{name} was not caught:\n{}", report.join("\n"));
}

#[test]
fn no_locking_is_caught() {
    caught(Mutant::NoLocking);
}

#[test]
fn quorum_two_f_is_caught() {
    caught(Mutant::QuorumTwoF);
}

#[test]
fn no_signature_check_is_caught() {
    caught(Mutant::NoSignatureCheck);
}

#[test]
fn decide_on_prevotes_is_caught() {
    caught(Mutant::DecideOnPrevotes);
}

/// The same attacks with messages through the real gossip reactors: a
/// broken core is still caught, so gossip mode's clean runs mean something.
#[test]
fn a_broken_core_is_caught_in_gossip_mode_too() {
    let mutant = Mutant::DecideOnPrevotes;
    for s in attack_scenarios(&format!("{mutant:?}")) {
        let mut cfg = s.config.clone().gossip(true);
        cfg.mutant = Some(mutant);
        let summary = run_seeds(&cfg, 0..s.seeds, true).expect("valid configuration");
        println!("gossip / {}: {summary}", s.name);
        if summary
            .by_property
            .iter()
            .any(|(p, _)| matches!(p, Property::Agreement | Property::Validity))
        {
            return;
        }
    }
    panic!("DecideOnPrevotes was not caught in gossip mode");
}
