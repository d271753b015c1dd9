//! A linearizability checker for histories of one register (Wing & Gong's search with
//! Lowe's memoisation of visited states, as Porcupine does), checked per key: a history of
//! many keys is linearizable iff each key's is (P-compositionality).
//!
//! Operations have an invocation time and, when the caller learned the outcome, a response
//! time. An operation without a response (the outcome is unknown: a timeout, a dropped
//! connection) may take effect at any point after its invocation, or never.

use std::collections::HashSet;

/// What was asked of the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Write(u64),
    /// Compare-and-set: `new` if the value is `expected`.
    Cas {
        expected: u64,
        new: u64,
    },
    Read,
}

/// What the caller saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// A write or a compare-and-set that applied.
    Done,
    /// A compare-and-set whose condition did not hold (nothing changed).
    Conflict,
    /// A read's value.
    Value(Option<u64>),
    /// No answer: it may have taken effect, or not.
    Unknown,
}

/// One operation of a history; times in any monotonic unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    pub call: Call,
    pub ret: Ret,
    pub invoked: u64,
    /// `None` with `Ret::Unknown`.
    pub completed: Option<u64>,
}

/// The register after `op`, or `None` if `op` cannot be next from `state`.
fn step(state: Option<u64>, op: &Op) -> Option<Option<u64>> {
    match (op.call, op.ret) {
        (Call::Write(v), Ret::Done | Ret::Unknown) => Some(Some(v)),
        (Call::Cas { expected, new }, Ret::Done | Ret::Unknown) => (state == Some(expected)).then_some(Some(new)),
        (Call::Cas { expected, .. }, Ret::Conflict) => (state != Some(expected)).then_some(state),
        (Call::Read, Ret::Value(v)) => (state == v).then_some(state),
        // A read without an answer tells nothing.
        (Call::Read, Ret::Unknown) => Some(state),
        _ => None,
    }
}

/// The verdict on one register's history.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Not linearizable: the longest sequence of operations that could be linearized.
    Not(Vec<Op>),
    /// The search visited `budget` states without an answer.
    Unknown,
}

/// Whether `history` (one register, starting empty) is linearizable; on failure, the
/// longest prefix of operations that could be linearized, for the report.
pub fn check(history: &[Op]) -> Result<(), Vec<Op>> {
    match check_within(history, u64::MAX) {
        Verdict::Linearizable => Ok(()),
        Verdict::Not(prefix) => Err(prefix),
        Verdict::Unknown => Err(Vec::new()),
    }
}

/// [`check`], giving up after visiting `budget` states.
///
/// Porcupine's formulation: the history as a list of call and return events in time order
/// (an operation without a response returns "at the end of time"); only the calls before
/// the first return are candidates, so each step costs the current concurrency, not the
/// history's length. A candidate that the model accepts, in a (placed set, value) state not
/// seen before, is taken out of the list; a return reached with nothing left to place means
/// backtracking.
pub fn check_within(history: &[Op], budget: u64) -> Verdict {
    let n = history.len();
    // Events: (time, is_return, op); calls sort before returns at the same time.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in history.iter().enumerate() {
        events.push((op.invoked, false, i));
        events.push((op.completed.unwrap_or(u64::MAX), true, i));
    }
    events.sort();
    // A doubly linked list over the events, with a head sentinel at index `len`.
    let len = events.len();
    let head = len;
    let mut next: Vec<usize> = (1..=len + 1).collect();
    let mut prev: Vec<usize> = Vec::with_capacity(len + 1);
    prev.extend((0..len).map(|i| if i == 0 { head } else { i - 1 }));
    prev.push(usize::MAX);
    next[head] = if len == 0 { len + 1 } else { 0 };
    let end = len + 1;
    if len > 0 {
        next[len - 1] = end;
    }
    let mut ret_of = vec![0usize; n];
    for (e, &(_, is_ret, i)) in events.iter().enumerate() {
        if is_ret {
            ret_of[i] = e;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = nx;
        if nx != end {
            prev[nx] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, e: usize| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = e;
        if nx != end {
            prev[nx] = e;
        }
    };

    let mut known_left = history.iter().filter(|o| o.completed.is_some()).count();
    let mut placed = vec![0u64; n.div_ceil(64)];
    let mut state: Option<u64> = None;
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // Placed calls: (call event, state before it).
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut left = budget;
    let mut entry = next[head];
    loop {
        if known_left == 0 {
            return Verdict::Linearizable;
        }
        // The end of the list, or a return whose call is not placed: something placed
        // earlier must go (the end is reached only with unknown operations left).
        if entry == end || events[entry].1 {
            let Some((call, before)) = stack.pop() else {
                return Verdict::Not(best.iter().map(|&e| history[events[e].2]).collect());
            };
            let j = events[call].2;
            state = before;
            placed[j / 64] &= !(1 << (j % 64));
            if history[j].completed.is_some() {
                known_left += 1;
            }
            relink(&mut next, &mut prev, ret_of[j]);
            relink(&mut next, &mut prev, call);
            entry = next[call];
            continue;
        }
        let i = events[entry].2;
        let mut took = false;
        if let Some(after) = step(state, &history[i]) {
            placed[i / 64] |= 1 << (i % 64);
            if seen.insert((placed.clone(), after)) {
                left = match left.checked_sub(1) {
                    Some(l) => l,
                    None => return Verdict::Unknown,
                };
                stack.push((entry, state));
                state = after;
                if history[i].completed.is_some() {
                    known_left -= 1;
                }
                unlink(&mut next, &mut prev, entry);
                unlink(&mut next, &mut prev, ret_of[i]);
                if stack.len() > best.len() {
                    best = stack.iter().map(|&(e, _)| e).collect();
                }
                entry = next[head];
                took = true;
            } else {
                placed[i / 64] &= !(1 << (i % 64));
            }
        }
        if !took {
            entry = next[entry];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, ret: Ret, invoked: u64, completed: Option<u64>) -> Op {
        Op { call, ret, invoked, completed }
    }

    #[test]
    fn a_sequential_history_that_reads_what_was_written_is_linearizable() {
        let h = [
            op(Call::Write(1), Ret::Done, 0, Some(1)),
            op(Call::Read, Ret::Value(Some(1)), 2, Some(3)),
            op(Call::Cas { expected: 1, new: 2 }, Ret::Done, 4, Some(5)),
            op(Call::Cas { expected: 1, new: 3 }, Ret::Conflict, 6, Some(7)),
            op(Call::Read, Ret::Value(Some(2)), 8, Some(9)),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_not_linearizable() {
        let h = [
            op(Call::Write(1), Ret::Done, 0, Some(1)),
            op(Call::Write(2), Ret::Done, 2, Some(3)),
            op(Call::Read, Ret::Value(Some(1)), 4, Some(5)),
        ];
        let err = check(&h).unwrap_err();
        assert_eq!(err.len(), 2, "the two writes linearize, the read cannot");
    }

    #[test]
    fn overlapping_operations_may_take_effect_in_either_order() {
        let h = [
            op(Call::Write(1), Ret::Done, 0, Some(10)),
            op(Call::Write(2), Ret::Done, 1, Some(9)),
            op(Call::Read, Ret::Value(Some(1)), 11, Some(12)),
        ];
        assert!(check(&h).is_ok(), "write(2) then write(1)");
        let h = [op(Call::Write(1), Ret::Done, 0, Some(10)), op(Call::Read, Ret::Value(None), 1, Some(2))];
        assert!(check(&h).is_ok(), "the read before the write took effect");
    }

    #[test]
    fn a_write_with_unknown_outcome_may_apply_late_or_never_but_not_twice() {
        let unknown = op(Call::Write(7), Ret::Unknown, 0, None);
        let h = [
            unknown,
            op(Call::Write(1), Ret::Done, 2, Some(3)),
            op(Call::Read, Ret::Value(Some(1)), 4, Some(5)),
            op(Call::Read, Ret::Value(Some(7)), 6, Some(7)),
        ];
        assert!(check(&h).is_ok(), "applied after write(1)");
        let never = [unknown, op(Call::Read, Ret::Value(None), 4, Some(5))];
        assert!(check(&never).is_ok(), "never applied");
        let twice = [
            unknown,
            op(Call::Read, Ret::Value(Some(7)), 1, Some(2)),
            op(Call::Write(1), Ret::Done, 3, Some(4)),
            op(Call::Read, Ret::Value(Some(7)), 5, Some(6)),
        ];
        assert!(check(&twice).is_err(), "one write cannot take effect twice");
    }

    #[test]
    fn a_conflict_must_see_a_value_other_than_expected() {
        let h = [
            op(Call::Write(1), Ret::Done, 0, Some(1)),
            op(Call::Cas { expected: 1, new: 2 }, Ret::Conflict, 2, Some(3)),
        ];
        assert!(check(&h).is_err(), "nothing else wrote: the cas had to apply");
    }

    /// A history of a real register: `clients` overlapping clients, each operation taking
    /// effect at a point inside its interval; one write in a hundred never answers (half of
    /// those never took effect), about what a fault run sees.
    fn simulated(ops: usize, clients: u64, seed: u64) -> Vec<Op> {
        let mut x = seed | 1;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut value = None;
        let mut out = Vec::new();
        let mut t = 0u64;
        let mut next = 1u64;
        while out.len() < ops {
            // Effect points in order; each interval straddles its point and its neighbours'.
            t += 10;
            let invoked = t.saturating_sub(rnd(10 * clients));
            let completed = t + rnd(10 * clients);
            let (call, ret) = match rnd(100) {
                0..=39 => (Call::Read, Ret::Value(value)),
                40..=69 => {
                    value = Some(next);
                    next += 1;
                    (Call::Write(next - 1), Ret::Done)
                }
                70 => {
                    let v = next;
                    next += 1;
                    if rnd(2) == 0 {
                        value = Some(v);
                    }
                    (Call::Write(v), Ret::Unknown)
                }
                _ => {
                    let expected = if rnd(2) == 0 { value.unwrap_or(0) } else { 0 };
                    let new = next;
                    next += 1;
                    if value == Some(expected) {
                        value = Some(new);
                        (Call::Cas { expected, new }, Ret::Done)
                    } else {
                        (Call::Cas { expected, new }, Ret::Conflict)
                    }
                }
            };
            let completed = (ret != Ret::Unknown).then_some(completed);
            out.push(op(call, ret, invoked, completed));
        }
        out
    }

    #[test]
    fn long_overlapping_histories_are_decided_and_a_stale_read_in_them_is_found() {
        for seed in 1..=5 {
            let h = simulated(5_000, 4, seed);
            assert_eq!(check_within(&h, 200_000), Verdict::Linearizable, "seed {seed}");
            // One late read returns a value overwritten long before it began. Proving a
            // history wrong means trying every order, so this one is shorter.
            let mut bad = simulated(400, 4, seed);
            let last_write = bad.iter().rposition(|o| matches!((o.call, o.ret), (Call::Write(_), Ret::Done))).unwrap();
            let first_value = bad.iter().find_map(|o| match (o.call, o.ret) {
                (Call::Write(v), Ret::Done) => Some(v),
                _ => None,
            });
            let end = bad[last_write].completed.unwrap() + 1_000;
            bad.push(op(Call::Read, Ret::Value(first_value), end, Some(end + 1)));
            let v = check_within(&bad, 1_000_000);
            assert!(matches!(v, Verdict::Not(_)), "seed {seed}: the stale read was not found: {v:?}");
        }
    }
}
