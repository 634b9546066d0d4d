//! Property tests of the code state machine: any sequence of operations,
//! applied through the domain's own checks, keeps the documented invariants.

use codegate_domain::codes::{
    check_reactivate, check_verify, has_passed, CodeFacts, CodeState, ProjectFacts, RedeemFailure,
};
use proptest::prelude::*;

const START: i64 = 1_767_225_600;

#[derive(Debug, Clone)]
enum Op {
    Verify,
    Reactivate,
    Disable,
    Enable,
    /// The code's own expiry, relative to the clock; `None` clears it.
    SetExpiry(Option<i64>),
    SetProjectExpiry(Option<i64>),
    SetProjectEnabled(bool),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let offset = prop_oneof![Just(0i64), -100i64..100, Just(1), Just(-1)];
    prop_oneof![
        4 => Just(Op::Verify),
        3 => Just(Op::Reactivate),
        1 => Just(Op::Disable),
        1 => Just(Op::Enable),
        1 => proptest::option::of(offset.clone()).prop_map(Op::SetExpiry),
        1 => proptest::option::of(offset).prop_map(Op::SetProjectExpiry),
        1 => any::<bool>().prop_map(Op::SetProjectEnabled),
        2 => (0i64..60).prop_map(Op::Advance),
    ]
}

/// The state precedence written out independently of `CodeFacts::state`:
/// the first rule that holds, in the order disabled > used > expired > unused.
fn oracle_state(c: &CodeFacts, p: &ProjectFacts, now: i64) -> CodeState {
    let expiry = c.expires_at.or(p.expires_at);
    let rules = [
        (c.disabled, CodeState::Disabled),
        (c.use_count >= c.max_uses, CodeState::Used),
        (expiry.is_some_and(|t| now >= t), CodeState::Expired),
        (true, CodeState::Unused),
    ];
    rules.into_iter().find(|(holds, _)| *holds).unwrap().1
}

fn project_open(p: &ProjectFacts, now: i64) -> bool {
    p.enabled && !has_passed(p.expires_at, now)
}

/// The first failing verify check, in the documented order.
fn oracle_verify(c: &CodeFacts, p: &ProjectFacts, now: i64) -> Result<(), RedeemFailure> {
    let expiry = c.expires_at.or(p.expires_at);
    if c.disabled {
        Err(RedeemFailure::CodeDisabled)
    } else if c.use_count >= c.max_uses {
        Err(RedeemFailure::CodeAlreadyUsed)
    } else if expiry.is_some_and(|t| now >= t) {
        Err(RedeemFailure::CodeExpired)
    } else if !p.enabled {
        Err(RedeemFailure::ProjectDisabled)
    } else if has_passed(p.expires_at, now) {
        Err(RedeemFailure::ProjectExpired)
    } else {
        Ok(())
    }
}

fn check_invariants(c: &CodeFacts, p: &ProjectFacts, now: i64) {
    assert!((0..=c.max_uses).contains(&c.use_count), "0 <= use_count <= max_uses: {c:?}");
    let state = c.state(p.expires_at, now);
    assert_eq!(state, oracle_state(c, p, now), "state of {c:?} {p:?} at {now}");
    assert_eq!(c.is_used(), c.use_count >= c.max_uses);
    assert_eq!(check_verify(None, p, now), Err(RedeemFailure::CodeNotFound));
    assert_eq!(check_reactivate(None, p, now), Err(RedeemFailure::CodeNotFound));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_sequence_keeps_the_invariants(
        max_uses in 1i64..4,
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let mut now = START;
        let mut code = CodeFacts { disabled: false, use_count: 0, max_uses, expires_at: None };
        let mut project = ProjectFacts { enabled: true, expires_at: None };
        let (mut verified, mut reactivated) = (0i64, 0i64);
        check_invariants(&code, &project, now);
        for op in ops {
            match op {
                Op::Verify => {
                    let before = code;
                    let outcome = check_verify(Some(&code), &project, now);
                    prop_assert_eq!(outcome, oracle_verify(&before, &project, now));
                    // Verify succeeds iff the code is unused and the project open.
                    let unused = before.state(project.expires_at, now) == CodeState::Unused;
                    prop_assert_eq!(outcome.is_ok(), unused && project_open(&project, now));
                    if outcome.is_ok() {
                        code.use_count += 1;
                        verified += 1;
                    }
                }
                Op::Reactivate => {
                    let outcome = check_reactivate(Some(&code), &project, now);
                    if outcome.is_ok() {
                        prop_assert!(code.use_count > 0, "reactivate only gives back a use: {code:?}");
                        prop_assert!(!code.disabled);
                        prop_assert!(!code.is_expired(project.expires_at, now));
                        prop_assert!(project_open(&project, now));
                        code.use_count -= 1;
                        reactivated += 1;
                    } else if !code.disabled && code.use_count == 0 {
                        prop_assert_eq!(outcome, Err(RedeemFailure::CodeAlreadyUnused));
                    } else if code.disabled {
                        prop_assert_eq!(outcome, Err(RedeemFailure::CodeDisabled));
                    }
                }
                Op::Disable => code.disabled = true,
                Op::Enable => code.disabled = false,
                Op::SetExpiry(t) => code.expires_at = t.map(|d| now + d),
                Op::SetProjectExpiry(t) => project.expires_at = t.map(|d| now + d),
                Op::SetProjectEnabled(on) => project.enabled = on,
                Op::Advance(secs) => now += secs,
            }
            check_invariants(&code, &project, now);
            prop_assert_eq!(code.use_count, verified - reactivated);
        }
    }

    /// However the facts are set, the state is one of the four, decided by precedence.
    #[test]
    fn state_precedence_for_arbitrary_facts(
        disabled in any::<bool>(),
        max_uses in 1i64..5,
        use_count in 0i64..6,
        own in proptest::option::of(-5i64..5),
        project_expiry in proptest::option::of(-5i64..5),
        enabled in any::<bool>(),
    ) {
        let use_count = use_count.min(max_uses);
        let c = CodeFacts { disabled, use_count, max_uses, expires_at: own.map(|d| START + d) };
        let p = ProjectFacts { enabled, expires_at: project_expiry.map(|d| START + d) };
        prop_assert_eq!(c.state(p.expires_at, START), oracle_state(&c, &p, START));
        prop_assert_eq!(check_verify(Some(&c), &p, START), oracle_verify(&c, &p, START));
        if disabled {
            prop_assert_eq!(c.state(p.expires_at, START), CodeState::Disabled);
        }
    }
}
