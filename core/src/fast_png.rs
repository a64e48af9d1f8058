//! The PNGs most images are (8-bit RGB or RGBA, not interlaced) decoded in one pass: the
//! zlib stream inflated at once by libdeflate into a buffer of the size the header implies
//! (a third faster than the streaming inflater `image` uses, on photographs), then each row
//! unfiltered in place. Anything else, and any file this path finds malformed, is left to
//! `image`'s decoder, so what is accepted and how errors read do not change.

use image::RgbImage;

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// What the header says of a PNG this path decodes.
struct Header {
    width: u32,
    height: u32,
    /// 3 (RGB) or 4 (RGBA).
    channels: usize,
}

/// The image's size, when this path can decode it.
pub(crate) fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    header(bytes).map(|h| (h.width, h.height))
}

/// The image as RGB (alpha dropped, as `image`'s `into_rgb8` does), or `None` when this path
/// does not take it; callers check the size against their limit first (`dimensions`).
pub(crate) fn decode(bytes: &[u8]) -> Option<RgbImage> {
    let header = header(bytes)?;
    let stride = header.width as usize * header.channels;
    let rows = header.height as usize;
    let mut raw = vec![0u8; rows.checked_mul(stride + 1)?];
    let stream = image_data(bytes)?;
    let written = libdeflater::Decompressor::new()
        .zlib_decompress(&stream, &mut raw)
        .ok()?;
    if written != raw.len() {
        return None;
    }
    let pixels = match header.channels {
        3 => unfilter::<3>(raw, stride, rows)?,
        _ => drop_alpha(unfilter::<4>(raw, stride, rows)?),
    };
    RgbImage::from_raw(header.width, header.height, pixels)
}

/// IHDR, when it is the first chunk, intact, and describes an image this path decodes.
fn header(bytes: &[u8]) -> Option<Header> {
    let rest = bytes.strip_prefix(SIGNATURE)?;
    let (kind, data, _) = chunk(rest)?;
    if kind != *b"IHDR" || data.len() != 13 {
        return None;
    }
    let width = u32::from_be_bytes(data[0..4].try_into().ok()?);
    let height = u32::from_be_bytes(data[4..8].try_into().ok()?);
    let channels = match data[8..13] {
        // bit depth 8, colour type RGB / RGBA, deflate, adaptive filtering, no interlace
        [8, 2, 0, 0, 0] => 3,
        [8, 6, 0, 0, 0] => 4,
        _ => return None,
    };
    (width > 0 && height > 0).then_some(Header {
        width,
        height,
        channels,
    })
}

/// One chunk at the start of `bytes`, its CRC checked: type, data, the bytes after it.
fn chunk(bytes: &[u8]) -> Option<([u8; 4], &[u8], &[u8])> {
    let length = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let end = length.checked_add(8)?;
    let typed = bytes.get(4..end)?;
    let crc = u32::from_be_bytes(bytes.get(end..end + 4)?.try_into().ok()?);
    if crc32fast::hash(typed) != crc {
        return None;
    }
    let kind = typed[..4].try_into().ok()?;
    Some((kind, &typed[4..], &bytes[end + 4..]))
}

/// The IDAT chunks' data, concatenated; `None` where `image` might read the file otherwise:
/// a critical chunk this path does not know, IHDR again, PLTE after the data, IDAT chunks that
/// are not consecutive, or no IEND.
fn image_data(bytes: &[u8]) -> Option<Vec<u8>> {
    let (_ihdr, _, mut rest) = chunk(bytes.strip_prefix(SIGNATURE)?)?;
    let mut stream = Vec::new();
    let mut data_ended = false;
    loop {
        let (kind, data, after) = chunk(rest)?;
        match &kind {
            b"IEND" => return Some(stream),
            b"IDAT" if !data_ended => stream.extend_from_slice(data),
            // PLTE before the data: for RGB only a suggested palette.
            b"PLTE" if stream.is_empty() => {}
            // Ancillary chunks (lower-case first letter) change nothing `image` returns.
            _ if kind[0].is_ascii_lowercase() => data_ended = !stream.is_empty(),
            _ => return None,
        }
        rest = after;
    }
}

/// Unfilters `raw` (rows of a filter byte then `stride` bytes) into packed pixels, in place.
fn unfilter<const BPP: usize>(mut raw: Vec<u8>, stride: usize, rows: usize) -> Option<Vec<u8>> {
    let zeros = vec![0u8; stride];
    for row in 0..rows {
        // Row `row - 1` already sits packed at `(row - 1) * stride`; row `row` is still at
        // its filtered place, one byte per row further on.
        let start = row * (stride + 1);
        let (done, todo) = raw.split_at_mut(start);
        let previous = match row {
            0 => &zeros[..],
            _ => &done[(row - 1) * stride..row * stride],
        };
        let (filter, current) = todo.split_first_mut()?;
        unfilter_row::<BPP>(*filter, previous, &mut current[..stride])?;
        raw.copy_within(start + 1..start + 1 + stride, row * stride);
    }
    raw.truncate(rows * stride);
    Some(raw)
}

/// RGBA to RGB, in place.
fn drop_alpha(mut rgba: Vec<u8>) -> Vec<u8> {
    let pixels = rgba.len() / 4;
    for pixel in 0..pixels {
        rgba.copy_within(pixel * 4..pixel * 4 + 3, pixel * 3);
    }
    rgba.truncate(pixels * 3);
    rgba
}

/// Reverses one row's filter (PNG's five) in place; `previous` is the row above, unfiltered
/// (zeros for the first). `None` for an unknown filter type.
fn unfilter_row<const BPP: usize>(filter: u8, previous: &[u8], current: &mut [u8]) -> Option<()> {
    match filter {
        0 => {}
        1 => {
            let mut left = [0u8; BPP];
            for pixel in current.chunks_exact_mut(BPP) {
                for (value, left) in pixel.iter_mut().zip(&mut left) {
                    *value = value.wrapping_add(*left);
                    *left = *value;
                }
            }
        }
        2 => {
            for (value, &above) in current.iter_mut().zip(previous) {
                *value = value.wrapping_add(above);
            }
        }
        3 => {
            let mut left = [0u8; BPP];
            for (pixel, above) in current
                .chunks_exact_mut(BPP)
                .zip(previous.chunks_exact(BPP))
            {
                for i in 0..BPP {
                    let mean = (u16::from(above[i]) + u16::from(left[i])) / 2;
                    pixel[i] = pixel[i].wrapping_add(mean as u8);
                    left[i] = pixel[i];
                }
            }
        }
        4 => {
            let (mut left, mut upper_left) = ([0i16; BPP], [0i16; BPP]);
            for (pixel, above) in current
                .chunks_exact_mut(BPP)
                .zip(previous.chunks_exact(BPP))
            {
                for i in 0..BPP {
                    let up = i16::from(above[i]);
                    pixel[i] = pixel[i].wrapping_add(paeth(left[i], up, upper_left[i]));
                    left[i] = i16::from(pixel[i]);
                    upper_left[i] = up;
                }
            }
        }
        _ => return None,
    }
    Some(())
}

/// The Paeth predictor in stb_image's branch-free form: the same choice as the
/// specification's, with shorter dependency chains.
fn paeth(a: i16, b: i16, c: i16) -> u8 {
    let threshold = c * 3 - (a + b);
    let (lo, hi) = (a.min(b), a.max(b));
    let nearer = if hi <= threshold { lo } else { c };
    (if threshold <= lo { hi } else { nearer }) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::{ImageEncoder, Rgb, Rgba, RgbaImage};

    fn encode(
        pixels: &[u8],
        width: u32,
        height: u32,
        color: image::ExtendedColorType,
        filter: FilterType,
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Default, filter)
            .write_image(pixels, width, height, color)
            .unwrap();
        bytes
    }

    fn reference(bytes: &[u8]) -> RgbImage {
        image::load_from_memory(bytes).unwrap().into_rgb8()
    }

    #[test]
    fn every_filter_decodes_as_image_does() {
        let rgb = RgbImage::from_fn(37, 23, |x, y| {
            Rgb([(x * 7 + y) as u8, (x * y) as u8, (y * 11) as u8])
        });
        let rgba = RgbaImage::from_fn(37, 23, |x, y| {
            Rgba([(x * 5) as u8, (y * 3 + x) as u8, 200, (x + y) as u8])
        });
        for filter in [
            FilterType::NoFilter,
            FilterType::Sub,
            FilterType::Up,
            FilterType::Avg,
            FilterType::Paeth,
            FilterType::Adaptive,
        ] {
            let bytes = encode(rgb.as_raw(), 37, 23, image::ExtendedColorType::Rgb8, filter);
            assert_eq!(decode(&bytes).unwrap(), reference(&bytes), "{filter:?}");
            let bytes = encode(
                rgba.as_raw(),
                37,
                23,
                image::ExtendedColorType::Rgba8,
                filter,
            );
            assert_eq!(decode(&bytes).unwrap(), reference(&bytes), "{filter:?}");
        }
    }

    #[test]
    fn leaves_other_and_broken_files_to_image() {
        let gray = encode(
            &[1, 2, 3, 4],
            2,
            2,
            image::ExtendedColorType::L8,
            FilterType::Sub,
        );
        assert!(decode(&gray).is_none());
        let rgb = encode(
            &[9; 12],
            2,
            2,
            image::ExtendedColorType::Rgb8,
            FilterType::Sub,
        );
        assert!(decode(&rgb).is_some());
        assert!(decode(&rgb[..rgb.len() - 6]).is_none(), "truncated");
        let mut flipped = rgb.clone();
        let last_idat_byte = flipped.len() - 12 - 5;
        flipped[last_idat_byte] ^= 1;
        assert!(decode(&flipped).is_none(), "a CRC mismatch");
        assert!(decode(b"\x89PNG\r\n\x1a\n").is_none());
        assert!(decode(b"").is_none());
    }

    /// A PNG of `chunks`, each (type, data) with its length and CRC.
    fn assemble(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut png = SIGNATURE.to_vec();
        for (kind, data) in chunks {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let start = png.len();
            png.extend_from_slice(*kind);
            png.extend_from_slice(data);
            let crc = crc32fast::hash(&png[start..]);
            png.extend_from_slice(&crc.to_be_bytes());
        }
        png
    }

    #[test]
    fn unusual_chunk_orders_are_left_to_image() {
        let bytes = encode(
            &[9; 12],
            2,
            2,
            image::ExtendedColorType::Rgb8,
            FilterType::Sub,
        );
        let (ihdr, stream) = (&bytes[16..29], image_data(&bytes).unwrap());
        let (first, second) = stream.split_at(stream.len() / 2);
        let split = [
            (b"IHDR", ihdr),
            (b"IDAT", first),
            (b"IDAT", second),
            (b"IEND", &[][..]),
        ];
        assert!(decode(&assemble(&split)).is_some());
        let text = &b"Comment\0hi"[..];
        let gap = [
            (b"IHDR", ihdr),
            (b"IDAT", first),
            (b"tEXt", text),
            (b"IDAT", second),
            (b"IEND", &[][..]),
        ];
        assert!(decode(&assemble(&gap)).is_none());
        let twice = [
            (b"IHDR", ihdr),
            (b"IHDR", ihdr),
            (b"IDAT", &stream[..]),
            (b"IEND", &[][..]),
        ];
        assert!(decode(&assemble(&twice)).is_none());
        let no_end = [(b"IHDR", ihdr), (b"IDAT", &stream[..])];
        assert!(decode(&assemble(&no_end)).is_none());
    }

    #[test]
    fn corrupt_streams_with_valid_crcs_decode_as_image_does_or_fall_back() {
        let rgb = RgbImage::from_fn(16, 9, |x, y| {
            Rgb([(x * 16) as u8, (y * 28) as u8, (x ^ y) as u8])
        });
        let bytes = encode(
            rgb.as_raw(),
            16,
            9,
            image::ExtendedColorType::Rgb8,
            FilterType::Adaptive,
        );
        let ihdr = &bytes[16..29];
        let stream = image_data(&bytes).unwrap();
        // A fixed xorshift sequence: the same mutations on every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut taken, mut agreed) = (0, 0);
        for _ in 0..3000 {
            let mut mutated = stream.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % mutated.len() as u64) as usize;
                mutated[at] ^= 1 << (next() % 8);
            }
            if next() % 4 == 0 {
                mutated.truncate((next() % mutated.len() as u64) as usize);
            }
            let png = assemble(&[(b"IHDR", ihdr), (b"IDAT", &mutated), (b"IEND", &[])]);
            let theirs = image::load_from_memory(&png).map(|i| i.into_rgb8());
            if let Some(ours) = decode(&png) {
                taken += 1;
                if let Ok(theirs) = theirs {
                    assert_eq!(ours, theirs);
                    agreed += 1;
                }
            }
        }
        assert!(taken > 0, "no mutation decoded");
        assert_eq!(
            taken, agreed,
            "the fast path accepted streams image refuses"
        );
    }
}
