//! Rows unfiltered together in SSE2 registers (see the parent module).

use safe_arch::{
    add_i16_m128i, bitand_m128i, bitandnot_m128i, bitor_m128i, byte_shr_imm_u128_m128i,
    cmp_gt_mask_i16_m128i, get_i64_from_m128i_s, m128i, max_i16_m128i, min_i16_m128i,
    pack_i16_to_u8_m128i, set_i64_m128i, set_i64_m128i_s, set_splat_i16_m128i, shr_imm_u16_m128i,
    sub_i16_m128i, unpack_low_i8_m128i, unpack_low_i64_m128i, zeroed_m128i,
};

const SUB: u8 = 1;
const AVERAGE: u8 = 3;
const PAETH: u8 = 4;

/// Reverses the filters of two adjacent rows together when both chain along the row (Sub,
/// Average, Paeth in any mix); `false`, with nothing touched, otherwise.
pub(super) fn unfilter_pair<const BPP: usize>(
    filters: [u8; 2],
    above: &[u8],
    upper: &mut [u8],
    lower: &mut [u8],
) -> bool {
    macro_rules! pairs {
        ($($upper:ident $lower:ident),*) => {
            match filters {
                $([$upper, $lower] => pair::<BPP, $upper, $lower>(above, upper, lower),)*
                _ => return false,
            }
        };
    }
    pairs!(
        SUB SUB, SUB AVERAGE, SUB PAETH,
        AVERAGE SUB, AVERAGE AVERAGE, AVERAGE PAETH,
        PAETH SUB, PAETH AVERAGE, PAETH PAETH
    );
    true
}

/// The predictors a quad's rows use: Sub, Average and Paeth; Sub and Average; Paeth alone.
const MIXED: u8 = 0;
const NO_PAETH: u8 = 1;
const ONLY_PAETH: u8 = 2;

/// Which of Sub, Average and Paeth each half of a register's lanes predicts with.
struct Masks {
    sub: m128i,
    average: m128i,
    paeth: m128i,
}

impl Masks {
    fn new([upper, lower]: [u8; 2]) -> Masks {
        let mask = |filter| {
            let half = |row| if row == filter { -1 } else { 0 };
            set_i64_m128i(half(lower), half(upper))
        };
        Masks {
            sub: mask(SUB),
            average: mask(AVERAGE),
            paeth: mask(PAETH),
        }
    }

    /// Each half's prediction.
    #[inline(always)]
    fn predict<const PREDICTORS: u8>(&self, left: m128i, up: m128i, upper_left: m128i) -> m128i {
        if PREDICTORS == ONLY_PAETH {
            return paeth(left, up, upper_left);
        }
        let average = shr_imm_u16_m128i::<1>(add_i16_m128i(left, up));
        let others = bitor_m128i(
            bitand_m128i(self.sub, left),
            bitand_m128i(self.average, average),
        );
        match PREDICTORS {
            MIXED => bitor_m128i(
                others,
                bitand_m128i(self.paeth, paeth(left, up, upper_left)),
            ),
            _ => others,
        }
    }
}

/// Reverses the filters of the four rows in `rows` (each a filter byte then the row) in
/// place when all chain along the row, as two pairs in two registers: rows k one pixel
/// behind row k - 1, so the second pair's pixels above are the first pair's output of the
/// step before and the two chains run side by side. `false`, nothing touched, otherwise.
pub(super) fn unfilter_quad<const BPP: usize>(above: &[u8], rows: &mut [u8], line: usize) -> bool {
    let filters: [u8; 4] = std::array::from_fn(|k| rows[k * line]);
    if !filters.iter().all(|f| matches!(*f, SUB | AVERAGE | PAETH)) {
        return false;
    }
    let masks = [
        Masks::new([filters[0], filters[1]]),
        Masks::new([filters[2], filters[3]]),
    ];
    // Paeth's predictor only where a row uses it (Average and Sub alone are a shorter
    // chain), and no choice to make when every row uses it.
    match (
        filters.contains(&PAETH),
        filters.iter().all(|&f| f == PAETH),
    ) {
        (_, true) => quad::<BPP, ONLY_PAETH>(above, rows, line, masks),
        (true, false) => quad::<BPP, MIXED>(above, rows, line, masks),
        (false, _) => quad::<BPP, NO_PAETH>(above, rows, line, masks),
    }
    true
}

fn quad<const BPP: usize, const PREDICTORS: u8>(
    above: &[u8],
    rows: &mut [u8],
    line: usize,
    masks: [Masks; 2],
) {
    let (row0, rest) = rows.split_at_mut(line);
    let (row1, rest) = rest.split_at_mut(line);
    let (row2, row3) = rest.split_at_mut(line);
    let mut rows = [
        &mut row0[1..],
        &mut row1[1..],
        &mut row2[1..],
        &mut row3[1..],
    ];
    let pixels = (line - 1) / BPP;
    let mut chains = Chains::<PREDICTORS> {
        masks,
        state: [zeroed_m128i(); 4],
    };
    // The first and last three steps: rows not yet started or already ended read zeros
    // and write nothing.
    let edge_step = |rows: &mut [&mut [u8]; 4], chains: &mut Chains<PREDICTORS>, x: usize| {
        let pixel = |k: usize| x.checked_sub(k).filter(|&p| p < pixels);
        let filtered = std::array::from_fn(|k| pixel(k).map_or(0, |p| word(rows[k], p * BPP)));
        let written = chains.step(filtered, pixel(0).map_or(0, |p| word(above, p * BPP)));
        for (k, row) in rows.iter_mut().enumerate() {
            if let Some(p) = pixel(k) {
                let half = 4 * (k % 2);
                row[p * BPP..(p + 1) * BPP].copy_from_slice(&written[k / 2][half..half + BPP]);
            }
        }
    };
    for x in 0..3 {
        edge_step(&mut rows, &mut chains, x);
    }
    for x in 3..pixels {
        let at = |k: usize| (x - k) * BPP;
        let filtered = [
            word(rows[0], at(0)),
            word(rows[1], at(1)),
            word(rows[2], at(2)),
            word(rows[3], at(3)),
        ];
        let [a, b] = chains.step(filtered, word(above, at(0)));
        rows[0][at(0)..at(0) + BPP].copy_from_slice(&a[..BPP]);
        rows[1][at(1)..at(1) + BPP].copy_from_slice(&a[4..4 + BPP]);
        rows[2][at(2)..at(2) + BPP].copy_from_slice(&b[..BPP]);
        rows[3][at(3)..at(3) + BPP].copy_from_slice(&b[4..4 + BPP]);
    }
    for x in 3.max(pixels)..pixels + 3 {
        edge_step(&mut rows, &mut chains, x);
    }
}

/// The two registers' chains: each pair's last outputs and last pixels above.
struct Chains<const PREDICTORS: u8> {
    masks: [Masks; 2],
    state: [m128i; 4],
}

impl<const PREDICTORS: u8> Chains<PREDICTORS> {
    /// One step: row k's pixel x - k, from its filtered bytes and the pixel above row 0's.
    #[inline(always)]
    fn step(&mut self, filtered: [u32; 4], above: u32) -> [[u8; 8]; 2] {
        let [first, second] = &self.masks;
        let [a, b, a_upper_left, b_upper_left] = self.state;
        let a_up = unpack_low_i64_m128i(lanes(above, 0), a);
        let b_up = unpack_low_i64_m128i(byte_shr_imm_u128_m128i::<8>(a), b);
        let a_sum = lanes(filtered[0], filtered[1]);
        let b_sum = lanes(filtered[2], filtered[3]);
        let a = add_i16_m128i(a_sum, first.predict::<PREDICTORS>(a, a_up, a_upper_left));
        let b = add_i16_m128i(b_sum, second.predict::<PREDICTORS>(b, b_up, b_upper_left));
        let byte = set_splat_i16_m128i(0xff);
        let (a, b) = (bitand_m128i(a, byte), bitand_m128i(b, byte));
        self.state = [a, b, a_up, b_up];
        [bytes(a), bytes(b)]
    }
}

/// A register's 16-bit lanes as bytes: the upper row's pixel, then the lower row's.
#[inline(always)]
fn bytes(out: m128i) -> [u8; 8] {
    (get_i64_from_m128i_s(pack_i16_to_u8_m128i(out, out)) as u64).to_le_bytes()
}

/// Eight 16-bit lanes: the upper row's pixel in lanes 0..4, the lower row's in 4..8 (lane 3
/// and 7 unused for RGB).
#[inline(always)]
fn lanes(upper: u32, lower: u32) -> m128i {
    let bytes = set_i64_m128i_s((u64::from(upper) | (u64::from(lower) << 32)) as i64);
    unpack_low_i8_m128i(bytes, zeroed_m128i())
}

/// Four bytes from `at` (zeros past the row's end): one pixel, and for RGB one spare byte.
/// Byte by byte at a row's end, without a call: a call in the loop would keep its vectors
/// on the stack.
#[inline(always)]
fn word(row: &[u8], at: usize) -> u32 {
    match row.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => u32::from_le_bytes(std::array::from_fn(|i| {
            row.get(at + i).copied().unwrap_or(0)
        })),
    }
}

#[inline(always)]
fn blend(mask: m128i, yes: m128i, no: m128i) -> m128i {
    bitor_m128i(bitand_m128i(mask, yes), bitandnot_m128i(mask, no))
}

/// `paeth` above, lane by lane.
#[inline(always)]
fn paeth(a: m128i, b: m128i, c: m128i) -> m128i {
    let threshold = sub_i16_m128i(add_i16_m128i(add_i16_m128i(c, c), c), add_i16_m128i(a, b));
    let (lo, hi) = (min_i16_m128i(a, b), max_i16_m128i(a, b));
    let nearer = blend(cmp_gt_mask_i16_m128i(hi, threshold), c, lo);
    blend(cmp_gt_mask_i16_m128i(threshold, lo), nearer, hi)
}

#[inline(always)]
fn predict<const FILTER: u8>(left: m128i, up: m128i, upper_left: m128i) -> m128i {
    match FILTER {
        SUB => left,
        AVERAGE => shr_imm_u16_m128i::<1>(add_i16_m128i(left, up)),
        _ => paeth(left, up, upper_left),
    }
}

/// The upper row's pixel x and the lower row's pixel x - 1 per step.
fn pair<const BPP: usize, const UPPER: u8, const LOWER: u8>(
    above: &[u8],
    upper: &mut [u8],
    lower: &mut [u8],
) {
    let upper_lanes = set_i64_m128i(0, -1);
    let byte = set_splat_i16_m128i(0xff);
    // `left`: both rows' previous outputs; its lower half is also the lower row's pixel
    // above. `upper_left`: the previous step's pixels above.
    let step = |upper_filtered: u32, lower_filtered: u32, above: u32, left, upper_left| {
        let up = unpack_low_i64_m128i(lanes(above, 0), left);
        let predicted = match UPPER == LOWER {
            true => predict::<UPPER>(left, up, upper_left),
            false => blend(
                upper_lanes,
                predict::<UPPER>(left, up, upper_left),
                predict::<LOWER>(left, up, upper_left),
            ),
        };
        let sum = add_i16_m128i(lanes(upper_filtered, lower_filtered), predicted);
        (bitand_m128i(sum, byte), up)
    };
    let pixels = upper.len() / BPP;
    if pixels == 0 {
        return;
    }
    // The upper row's first pixel alone: the lower row's lanes start from zeros.
    let (out, up) = step(
        word(upper, 0),
        0,
        word(above, 0),
        zeroed_m128i(),
        zeroed_m128i(),
    );
    let (mut left, mut upper_left) = (
        bitand_m128i(out, upper_lanes),
        bitand_m128i(up, upper_lanes),
    );
    upper[..BPP].copy_from_slice(&bytes(left)[..BPP]);
    for x in 1..pixels {
        let (at, behind) = (x * BPP, (x - 1) * BPP);
        let (out, up) = step(
            word(upper, at),
            word(lower, behind),
            word(above, at),
            left,
            upper_left,
        );
        let written = bytes(out);
        upper[at..at + BPP].copy_from_slice(&written[..BPP]);
        lower[behind..at].copy_from_slice(&written[4..4 + BPP]);
        (left, upper_left) = (out, up);
    }
    // The lower row's last pixel alone.
    let last = (pixels - 1) * BPP;
    let (out, _) = step(0, word(lower, last), 0, left, upper_left);
    lower[last..last + BPP].copy_from_slice(&bytes(out)[4..4 + BPP]);
}
