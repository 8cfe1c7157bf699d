//! Phase 2, circuit-specific (Bowe-Gabizon-Miers 2017, §4): the Groth16 proving key of one
//! circuit computed from the phase-1 accumulator with `gamma = delta = 1`, then each
//! contributor multiplies `delta` by a fresh secret `d` (and divides the H and L queries by it)
//! and proves it with a [`Pok`]. The key is laid out exactly as arkworks' generator lays it out
//! (the libsnark R1CS-to-QAP reduction, instance rows appended), so arkworks proves with it.

use super::group::{
    generators, ifft, merge_two, put, same_ratio, Pok, Reader, Scale, G1_LEN, G2_LEN, POK_LEN,
};
use super::phase1::Accumulator;
use super::CeremonyError;
use ark_bn254::{Bn254, Fr, G1Affine, G1Projective, G2Projective};
use ark_ec::{AffineRepr, CurveGroup, VariableBaseMSM};
use ark_ff::{Field, One, UniformRand, Zero};
use ark_groth16::{ProvingKey, VerifyingKey};
use ark_poly::{EvaluationDomain, GeneralEvaluationDomain};
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, SynthesisMode, R1CS_PREDICATE_LABEL,
};
use rayon::prelude::*;

/// File magic of a phase-2 state.
pub const MAGIC: &[u8; 4] = b"CPH2";

/// A circuit's R1CS, by variable: which rows of A, B and C each variable appears in.
#[derive(Debug, Clone)]
pub struct Qap {
    /// Instance variables, the constant one included.
    pub num_instance: usize,
    /// All variables.
    pub num_vars: usize,
    /// Constraints.
    pub num_constraints: usize,
    /// QAP domain size (a power of two).
    pub domain: usize,
    cols: [Vec<Vec<(usize, Fr)>>; 3],
}

impl Qap {
    /// Synthesizes `circuit` as arkworks' generator does (setup mode, constraints optimized).
    pub fn of<C: ConstraintSynthesizer<Fr>>(circuit: C) -> Result<Qap, CeremonyError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Setup);
        circuit
            .generate_constraints(cs.clone())
            .map_err(|e| CeremonyError::Circuit(e.to_string()))?;
        cs.finalize();
        let num_instance = cs.num_instance_variables();
        let num_vars = num_instance + cs.num_witness_variables();
        let num_constraints = cs.num_constraints();
        let domain = GeneralEvaluationDomain::<Fr>::new(num_constraints + num_instance)
            .ok_or(CeremonyError::Shape("the circuit's domain"))?
            .size();
        let all = cs
            .to_matrices()
            .map_err(|e| CeremonyError::Circuit(e.to_string()))?;
        if all.len() != 1 {
            return Err(CeremonyError::Circuit(
                "only R1CS circuits are supported".into(),
            ));
        }
        let m = all
            .get(R1CS_PREDICATE_LABEL)
            .ok_or_else(|| CeremonyError::Circuit("no R1CS matrices".into()))?;
        let mut cols: [Vec<Vec<(usize, Fr)>>; 3] = Default::default();
        for (k, matrix) in m.iter().take(3).enumerate() {
            let mut c = vec![Vec::new(); num_vars];
            for (row, entries) in matrix.iter().enumerate() {
                for &(coeff, var) in entries {
                    c.get_mut(var)
                        .ok_or(CeremonyError::Shape("a variable index"))?
                        .push((row, coeff));
                }
            }
            cols[k] = c;
        }
        Ok(Qap {
            num_instance,
            num_vars,
            num_constraints,
            domain,
            cols,
        })
    }

    /// The phase-1 size this circuit needs (`log2` of its domain).
    pub fn power(&self) -> u32 {
        self.domain.trailing_zeros()
    }
}

fn lincomb<G: Scale>(basis: &[G::Affine], terms: &[(usize, Fr)]) -> G {
    let mut acc = G::zero();
    for (row, coeff) in terms {
        let p = basis[*row];
        if coeff.is_one() {
            acc += p;
        } else if (-*coeff).is_one() {
            acc -= p;
        } else {
            acc += p.into_group().times(coeff);
        }
    }
    acc
}

/// A contribution's proof of knowledge of its `d`.
pub type Contribution2 = Pok;

/// Bytes of an encoded [`Contribution2`].
pub const CONTRIBUTION_LEN: usize = POK_LEN;

/// Computes the starting key of `qap` from the final phase-1 accumulator.
pub fn initial(acc: &Accumulator, qap: &Qap) -> Result<ProvingKey<Bn254>, CeremonyError> {
    let n = qap.domain;
    if n > acc.n() {
        return Err(CeremonyError::Shape("phase 1 is smaller than the circuit"));
    }
    let l_g1 = ifft::<G1Projective>(&acc.tau_g1[..n])?;
    let l_g2 = ifft::<G2Projective>(&acc.tau_g2[..n])?;
    let la_g1 = ifft::<G1Projective>(&acc.alpha_g1[..n])?;
    let lb_g1 = ifft::<G1Projective>(&acc.beta_g1[..n])?;
    let nc = qap.num_constraints;
    let ni = qap.num_instance;
    let [ca, cb, cc] = &qap.cols;
    let vars: Vec<usize> = (0..qap.num_vars).collect();
    let a: Vec<G1Projective> = vars
        .par_iter()
        .map(|&i| {
            let mut p = lincomb::<G1Projective>(&l_g1, &ca[i]);
            if i < ni {
                p += l_g1[nc + i];
            }
            p
        })
        .collect();
    let b1: Vec<G1Projective> = vars
        .par_iter()
        .map(|&i| lincomb::<G1Projective>(&l_g1, &cb[i]))
        .collect();
    let b2: Vec<G2Projective> = vars
        .par_iter()
        .map(|&i| lincomb::<G2Projective>(&l_g2, &cb[i]))
        .collect();
    let abc: Vec<G1Projective> = vars
        .par_iter()
        .map(|&i| {
            let mut p = lincomb::<G1Projective>(&lb_g1, &ca[i])
                + lincomb::<G1Projective>(&la_g1, &cb[i])
                + lincomb::<G1Projective>(&l_g1, &cc[i]);
            if i < ni {
                p += lb_g1[nc + i];
            }
            p
        })
        .collect();
    let h: Vec<G1Projective> = (0..n - 1)
        .into_par_iter()
        .map(|i| acc.tau_g1[n + i].into_group() - acc.tau_g1[i])
        .collect();
    let abc = G1Projective::normalize_batch(&abc);
    let (g1, g2) = generators();
    Ok(ProvingKey {
        vk: VerifyingKey {
            alpha_g1: acc.alpha_g1[0],
            beta_g2: acc.beta_g2,
            gamma_g2: g2,
            delta_g2: g2,
            gamma_abc_g1: abc[..ni].to_vec(),
        },
        beta_g1: acc.beta_g1[0],
        delta_g1: g1,
        a_query: G1Projective::normalize_batch(&a),
        b_g1_query: G1Projective::normalize_batch(&b1),
        b_g2_query: G2Projective::normalize_batch(&b2),
        h_query: G1Projective::normalize_batch(&h),
        l_query: abc[ni..].to_vec(),
    })
}

/// Checks that `pk` is [`initial`] of `acc` and `qap` without the inverse FFTs: every query
/// is a linear function of the phase-1 powers, so a random combination of the claimed query
/// (weights `r`) must equal the powers combined with the weights the circuit and the inverse
/// DFT give (`ifft(Q^T r)`, the DFT matrix being symmetric): two multi-scalar multiplications
/// per query instead of `n log n` group multiplications. A wrong key passes with probability
/// at most `1/|Fr|` per query.
pub fn check_initial(
    acc: &Accumulator,
    qap: &Qap,
    pk: &ProvingKey<Bn254>,
) -> Result<(), CeremonyError> {
    let bad = |what: &str| Err(CeremonyError::Invalid(format!("phase 2 start: {what}")));
    let n = qap.domain;
    if n > acc.n() {
        return Err(CeremonyError::Shape("phase 1 is smaller than the circuit"));
    }
    let (v, ni, nc) = (qap.num_vars, qap.num_instance, qap.num_constraints);
    let (g1, g2) = generators();
    if pk.vk.alpha_g1 != acc.alpha_g1[0]
        || pk.beta_g1 != acc.beta_g1[0]
        || pk.vk.beta_g2 != acc.beta_g2
        || pk.vk.gamma_g2 != g2
        || pk.vk.delta_g2 != g2
        || pk.delta_g1 != g1
    {
        return bad("alpha, beta, gamma or delta");
    }
    if pk.a_query.len() != v
        || pk.b_g1_query.len() != v
        || pk.b_g2_query.len() != v
        || pk.vk.gamma_abc_g1.len() != ni
        || pk.l_query.len() != v - ni
        || pk.h_query.len() != n - 1
    {
        return bad("query lengths");
    }
    let h_ok = pk
        .h_query
        .par_iter()
        .enumerate()
        .all(|(i, h)| h.into_group() == acc.tau_g1[n + i].into_group() - acc.tau_g1[i]);
    if !h_ok {
        return bad("the H query");
    }
    let domain = GeneralEvaluationDomain::<Fr>::new(n).ok_or(CeremonyError::Shape("domain"))?;
    let mut rng = ark_std::rand::rngs::OsRng;
    let r: Vec<Fr> = (0..v).map(|_| Fr::rand(&mut rng)).collect();
    // s = Q^T r for each matrix: the row weights; A also carries the instance rows
    let [ca, cb, cc] = &qap.cols;
    let weights = |cols: &[Vec<(usize, Fr)>], instance_rows: bool| {
        let mut s = vec![Fr::zero(); n];
        for (k, col) in cols.iter().enumerate() {
            for (row, coeff) in col {
                s[*row] += r[k] * coeff;
            }
            if instance_rows && k < ni {
                s[nc + k] += r[k];
            }
        }
        domain.ifft(&s)
    };
    let (ua, ub, uc) = (weights(ca, true), weights(cb, false), weights(cc, false));
    let msm1 = |bases: &[G1Affine], w: &[Fr]| G1Projective::msm_unchecked(bases, w);
    if msm1(&pk.a_query, &r) != msm1(&acc.tau_g1[..n], &ua) {
        return bad("the A query");
    }
    if msm1(&pk.b_g1_query, &r) != msm1(&acc.tau_g1[..n], &ub) {
        return bad("the B query in G1");
    }
    if G2Projective::msm_unchecked(&pk.b_g2_query, &r)
        != G2Projective::msm_unchecked(&acc.tau_g2[..n], &ub)
    {
        return bad("the B query in G2");
    }
    let abc: Vec<G1Affine> = pk
        .vk
        .gamma_abc_g1
        .iter()
        .chain(&pk.l_query)
        .copied()
        .collect();
    let want =
        msm1(&acc.beta_g1[..n], &ua) + msm1(&acc.alpha_g1[..n], &ub) + msm1(&acc.tau_g1[..n], &uc);
    if msm1(&abc, &r) != want {
        return bad("the input and L queries");
    }
    Ok(())
}

/// Bytes of the encoding of a key of `qap`.
pub fn encoded_len(qap: &Qap) -> usize {
    let (v, ni, n) = (qap.num_vars, qap.num_instance, qap.domain);
    16 + (3 + ni + 2 * v + (n - 1) + (v - ni)) * G1_LEN + (3 + v) * G2_LEN
}

/// Appends the encoding of `pk`: `MAGIC`, variables, instance variables and domain size (u32
/// LE each), then `alpha, beta, delta` in G1, `beta, gamma, delta` in G2, and the queries.
pub fn put_key(out: &mut Vec<u8>, pk: &ProvingKey<Bn254>, qap: &Qap) {
    out.extend_from_slice(MAGIC);
    for x in [qap.num_vars, qap.num_instance, qap.domain] {
        out.extend_from_slice(&(x as u32).to_le_bytes());
    }
    for p in [&pk.vk.alpha_g1, &pk.beta_g1, &pk.delta_g1] {
        put(out, p);
    }
    for p in [&pk.vk.beta_g2, &pk.vk.gamma_g2, &pk.vk.delta_g2] {
        put(out, p);
    }
    for p in pk
        .vk
        .gamma_abc_g1
        .iter()
        .chain(&pk.a_query)
        .chain(&pk.b_g1_query)
    {
        put(out, p);
    }
    for p in &pk.b_g2_query {
        put(out, p);
    }
    for p in pk.h_query.iter().chain(&pk.l_query) {
        put(out, p);
    }
}

/// Reads a key of `qap` (every point checked).
pub fn read_key(r: &mut Reader<'_>, qap: &Qap) -> Result<ProvingKey<Bn254>, CeremonyError> {
    if r.take(4)? != MAGIC {
        return Err(CeremonyError::Malformed("not a phase-2 state".into()));
    }
    for x in [qap.num_vars, qap.num_instance, qap.domain] {
        if r.u32()? as usize != x {
            return Err(CeremonyError::Malformed(
                "the phase-2 state is of another circuit".into(),
            ));
        }
    }
    let (v, ni, n) = (qap.num_vars, qap.num_instance, qap.domain);
    let g1 = r.g1s(3)?;
    let g2 = r.g2s(3)?;
    let gamma_abc_g1 = r.g1s(ni)?;
    let a_query = r.g1s(v)?;
    let b_g1_query = r.g1s(v)?;
    let b_g2_query = r.g2s(v)?;
    let h_query = r.g1s(n - 1)?;
    let l_query = r.g1s(v - ni)?;
    Ok(ProvingKey {
        vk: VerifyingKey {
            alpha_g1: g1[0],
            beta_g2: g2[0],
            gamma_g2: g2[1],
            delta_g2: g2[2],
            gamma_abc_g1,
        },
        beta_g1: g1[1],
        delta_g1: g1[2],
        a_query,
        b_g1_query,
        b_g2_query,
        h_query,
        l_query,
    })
}

/// Multiplies a fresh secret from the OS into `delta`; `context` binds the proof of
/// knowledge to the transcript so far. The secret is dropped on return.
pub fn contribute(pk: &ProvingKey<Bn254>, context: &[u8]) -> (ProvingKey<Bn254>, Contribution2) {
    let d = Fr::rand(&mut ark_std::rand::rngs::OsRng);
    contribute_with(pk, d, context)
}

/// [`contribute`] with a given secret (tests).
pub fn contribute_with(
    pk: &ProvingKey<Bn254>,
    d: Fr,
    context: &[u8],
) -> (ProvingKey<Bn254>, Contribution2) {
    let d_inv = d.inverse().unwrap_or(Fr::zero());
    let scale = |v: &[G1Affine]| {
        let p: Vec<G1Projective> = v.par_iter().map(|p| *p * d_inv).collect();
        G1Projective::normalize_batch(&p)
    };
    let mut next = pk.clone();
    next.delta_g1 = (pk.delta_g1 * d).into_affine();
    next.vk.delta_g2 = (pk.vk.delta_g2 * d).into_affine();
    next.h_query = scale(&pk.h_query);
    next.l_query = scale(&pk.l_query);
    (next, Pok::new(d, &[context, b"delta"].concat()))
}

/// Checks that `next` is `old` with the secret `c` proves knowledge of multiplied into delta.
pub fn verify_step(
    old: &ProvingKey<Bn254>,
    next: &ProvingKey<Bn254>,
    c: &Contribution2,
    context: &[u8],
) -> Result<(), CeremonyError> {
    let bad = |what: &str| Err(CeremonyError::Invalid(format!("phase 2: {what}")));
    let Some(pair) = c.check(&[context, b"delta"].concat()) else {
        return bad("the proof of knowledge of delta does not check");
    };
    let same_rest = next.vk.alpha_g1 == old.vk.alpha_g1
        && next.vk.beta_g2 == old.vk.beta_g2
        && next.vk.gamma_g2 == old.vk.gamma_g2
        && next.vk.gamma_abc_g1 == old.vk.gamma_abc_g1
        && next.beta_g1 == old.beta_g1
        && next.a_query == old.a_query
        && next.b_g1_query == old.b_g1_query
        && next.b_g2_query == old.b_g2_query
        && next.h_query.len() == old.h_query.len()
        && next.l_query.len() == old.l_query.len();
    if !same_rest {
        return bad("a part other than delta, H and L changed");
    }
    if next.delta_g1.is_zero() || !same_ratio((old.delta_g1, next.delta_g1), pair) {
        return bad("delta was not multiplied by the proved secret");
    }
    let (g1, g2) = generators();
    if !same_ratio((g1, next.delta_g1), (g2, next.vk.delta_g2)) {
        return bad("[delta]1 and [delta]2 differ");
    }
    let deltas = (old.vk.delta_g2, next.vk.delta_g2);
    if !same_ratio(
        merge_two::<G1Projective>(&next.h_query, &old.h_query),
        deltas,
    ) {
        return bad("the H query was not divided by the secret");
    }
    if !same_ratio(
        merge_two::<G1Projective>(&next.l_query, &old.l_query),
        deltas,
    ) {
        return bad("the L query was not divided by the secret");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_groth16::Groth16;
    use ark_r1cs_std::alloc::AllocVar;
    use ark_r1cs_std::eq::EqGadget;
    use ark_r1cs_std::fields::fp::FpVar;
    use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};
    use ark_snark::SNARK;

    /// `x^3 + x + 5 = out` with `out` public, and a second public input tied to `x`.
    #[derive(Clone)]
    struct Cubic {
        x: Option<Fr>,
    }

    impl ConstraintSynthesizer<Fr> for Cubic {
        fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
            let x_val = self.x.ok_or(SynthesisError::AssignmentMissing);
            let out =
                FpVar::new_input(cs.clone(), || x_val.map(|x| x * x * x + x + Fr::from(5u64)))?;
            let twice = FpVar::new_input(cs.clone(), || x_val.map(|x| x + x))?;
            let x = FpVar::new_witness(cs.clone(), || x_val)?;
            (&x * &x * &x + &x + FpVar::Constant(Fr::from(5u64))).enforce_equal(&out)?;
            (&x + &x).enforce_equal(&twice)
        }
    }

    fn inputs(x: u64) -> Vec<Fr> {
        let x = Fr::from(x);
        vec![x * x * x + x + Fr::from(5u64), x + x]
    }

    #[test]
    fn keys_from_the_two_phases_prove_and_verify_with_arkworks() {
        let qap = Qap::of(Cubic { x: None }).unwrap();
        let mut acc = Accumulator::initial(qap.power()).unwrap();
        for k in 0..2u8 {
            acc = acc.contribute(&[k]).0;
        }
        let mut pk = initial(&acc, &qap).unwrap();
        check_initial(&acc, &qap, &pk).unwrap();
        for k in 0..2u8 {
            let (next, c) = contribute(&pk, &[k]);
            verify_step(&pk, &next, &c, &[k]).unwrap();
            pk = next;
        }
        let mut rng = ark_std::rand::rngs::OsRng;
        let proof = Groth16::<Bn254>::prove(
            &pk,
            Cubic {
                x: Some(Fr::from(3u64)),
            },
            &mut rng,
        )
        .unwrap();
        let pvk = Groth16::<Bn254>::process_vk(&pk.vk).unwrap();
        assert!(Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs(3), &proof).unwrap());
        assert!(!Groth16::<Bn254>::verify_with_processed_vk(&pvk, &inputs(4), &proof).unwrap());
        // the encoding round-trips at its stated length
        let mut enc = Vec::new();
        put_key(&mut enc, &pk, &qap);
        assert_eq!(enc.len(), encoded_len(&qap));
        assert_eq!(read_key(&mut Reader::new(&enc), &qap).unwrap(), pk);
    }

    /// Tampered copies of `pk`, one element bumped by the generator in each of the H, L, A
    /// and input queries and `[delta]1` (`index` picks the H element).
    fn bumped(pk: &ProvingKey<Bn254>, index: usize) -> Vec<(&'static str, ProvingKey<Bn254>)> {
        let g1 = generators().0;
        let bump = |p: &G1Affine| (*p + g1).into_affine();
        type Edit = fn(&mut ProvingKey<Bn254>, usize) -> &mut G1Affine;
        let edits: [(&str, Edit); 5] = [
            ("H", |k, i| &mut k.h_query[i]),
            ("L", |k, _| &mut k.l_query[0]),
            ("A", |k, _| &mut k.a_query[2]),
            ("inputs", |k, _| &mut k.vk.gamma_abc_g1[1]),
            ("delta", |k, _| &mut k.delta_g1),
        ];
        edits
            .iter()
            .map(|(what, at)| {
                let mut k = pk.clone();
                let p = at(&mut k, index);
                *p = bump(p);
                (*what, k)
            })
            .collect()
    }

    /// The toy circuit, a phase 1 with one contribution, and phase 2's start from it.
    fn start() -> (Qap, Accumulator, ProvingKey<Bn254>) {
        let qap = Qap::of(Cubic { x: None }).unwrap();
        let acc = Accumulator::initial(qap.power())
            .unwrap()
            .contribute(b"p1")
            .0;
        let pk = initial(&acc, &qap).unwrap();
        (qap, acc, pk)
    }

    #[test]
    fn a_phase_two_start_not_computed_from_phase_one_is_caught() {
        let (qap, acc, pk) = start();
        check_initial(&acc, &qap, &pk).unwrap();
        let g1 = generators().0;
        let g2 = generators().1;
        let bump = |p: &G1Affine| (*p + g1).into_affine();
        let mut cases: Vec<(&str, ProvingKey<Bn254>)> = Vec::new();
        for i in 0..pk.a_query.len() {
            let mut k = pk.clone();
            k.a_query[i] = bump(&k.a_query[i]);
            cases.push(("A", k));
            let mut k = pk.clone();
            k.b_g1_query[i] = bump(&k.b_g1_query[i]);
            cases.push(("B1", k));
            let mut k = pk.clone();
            k.b_g2_query[i] = (k.b_g2_query[i] + g2).into_affine();
            cases.push(("B2", k));
        }
        cases.extend(bumped(&pk, 0));
        // the start computed from another phase-1 state
        let other = Accumulator::initial(qap.power())
            .unwrap()
            .contribute(b"x")
            .0;
        cases.push(("other phase 1", initial(&other, &qap).unwrap()));
        for (what, k) in cases {
            assert!(check_initial(&acc, &qap, &k).is_err(), "{what}");
        }
    }

    #[test]
    fn phase_two_steps_that_do_more_than_randomize_delta_are_caught() {
        let (_, _, pk) = start();
        let (next, c) = contribute(&pk, b"ctx");
        verify_step(&pk, &next, &c, b"ctx").unwrap();
        let mut cases = bumped(&next, 1);
        cases.push(("no change at all", pk.clone()));
        for (what, k) in cases {
            assert!(verify_step(&pk, &k, &c, b"ctx").is_err(), "{what}");
        }
        // a replayed proof of knowledge (another context) and a zero secret
        assert!(verify_step(&pk, &next, &c, b"other").is_err());
        let (z, cz) = contribute_with(&pk, Fr::zero(), b"ctx");
        assert!(verify_step(&pk, &z, &cz, b"ctx").is_err());
    }
}
