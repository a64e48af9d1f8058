//! The PNGs most images are (8-bit RGB or RGBA, not interlaced) decoded in one pass: the
//! zlib stream inflated at once by libdeflate into a buffer of the size the header implies
//! (a third faster than the streaming inflater `image` uses, on photographs), then each row
//! unfiltered in place. Anything else, and any file this path finds malformed, is left to
//! `image`'s decoder, so what is accepted and how errors read do not change.

use std::sync::{Mutex, PoisonError};

use image::{ImageBuffer, Rgb, RgbImage};

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
    let mut buffers = Buffers::default();
    let (width, height) = decode_into(bytes, &mut buffers)?;
    buffers
        .pixels
        .truncate(width as usize * height as usize * 3);
    RgbImage::from_raw(width, height, buffers.pixels)
}

/// `use_image` on the decoded image, as `decode` but in kept buffers: no allocation, no
/// zeroing and no fresh pages per image.
pub(crate) fn with_decoded<T>(
    bytes: &[u8],
    use_image: impl FnOnce(&ImageBuffer<Rgb<u8>, &[u8]>) -> T,
) -> Option<T> {
    let mut buffers = Buffers::take();
    let (width, height) = decode_into(bytes, &mut buffers)?;
    let length = width as usize * height as usize * 3;
    let image = ImageBuffer::from_raw(width, height, buffers.pixels.get(..length)?)?;
    let result = use_image(&image);
    buffers.give_back();
    Some(result)
}

/// What a decode writes: the zlib stream gathered from its chunks, and the pixels (the
/// inflated rows, unfiltered and packed in place).
#[derive(Debug, Default)]
struct Buffers {
    stream: Vec<u8>,
    pixels: Vec<u8>,
}

/// Buffers kept for the next images, any thread's, the most recently used last.
static KEPT: Mutex<Vec<Buffers>> = Mutex::new(Vec::new());

impl Buffers {
    /// At most this much is kept between images, whatever the number of threads decoding.
    const KEPT_BYTES: usize = 32 << 20;

    fn take() -> Buffers {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        kept.pop().unwrap_or_default()
    }

    fn give_back(self) {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        let held: usize = kept.iter().map(Buffers::bytes).sum();
        if held + self.bytes() <= Self::KEPT_BYTES {
            kept.push(self);
        }
    }

    fn bytes(&self) -> usize {
        self.stream.capacity() + self.pixels.capacity()
    }
}

/// Decodes into `buffers`: the width and height, the RGB pixels at the start of
/// `buffers.pixels` (which may be longer, from an earlier image).
fn decode_into(bytes: &[u8], buffers: &mut Buffers) -> Option<(u32, u32)> {
    let header = header(bytes)?;
    let stride = header.width as usize * header.channels;
    let rows = header.height as usize;
    let length = rows.checked_mul(stride + 1)?;
    if buffers.pixels.len() < length {
        buffers.pixels.resize(length, 0);
    }
    let raw = &mut buffers.pixels[..length];
    gather_image_data(bytes, &mut buffers.stream)?;
    let written = libdeflater::Decompressor::new()
        .zlib_decompress(&buffers.stream, raw)
        .ok()?;
    if written != length {
        return None;
    }
    match header.channels {
        3 => unfilter::<3>(raw, stride, rows)?,
        _ => {
            unfilter::<4>(raw, stride, rows)?;
            drop_alpha(&mut raw[..rows * stride]);
        }
    }
    Some((header.width, header.height))
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

/// The IDAT chunks' data, concatenated into `stream`; `None` where `image` might read the file
/// otherwise: a critical chunk this path does not know, IHDR again, PLTE after the data, IDAT
/// chunks that are not consecutive, or no IEND.
fn gather_image_data(bytes: &[u8], stream: &mut Vec<u8>) -> Option<()> {
    let (_ihdr, _, mut rest) = chunk(bytes.strip_prefix(SIGNATURE)?)?;
    stream.clear();
    let mut data_ended = false;
    loop {
        let (kind, data, after) = chunk(rest)?;
        match &kind {
            b"IEND" => return Some(()),
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

/// Unfilters `raw` (rows of a filter byte then `stride` bytes), then packs the rows at its
/// start.
fn unfilter<const BPP: usize>(raw: &mut [u8], stride: usize, rows: usize) -> Option<()> {
    crate::png_unfilter::unfilter::<BPP>(raw, stride, rows)?;
    // Each row moves left by one byte more than the row above (its filter type and theirs).
    for row in 0..rows {
        let start = row * (stride + 1) + 1;
        raw.copy_within(start..start + stride, row * stride);
    }
    Some(())
}

/// RGBA to RGB, in place at the start of `rgba`.
fn drop_alpha(rgba: &mut [u8]) {
    for pixel in 0..rgba.len() / 4 {
        rgba.copy_within(pixel * 4..pixel * 4 + 3, pixel * 3);
    }
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

    fn image_data(bytes: &[u8]) -> Option<Vec<u8>> {
        let mut stream = Vec::new();
        gather_image_data(bytes, &mut stream)?;
        Some(stream)
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
    fn kept_buffers_leave_nothing_of_the_last_image() {
        let image = |width, height, seed: u32| {
            RgbaImage::from_fn(width, height, |x, y| {
                Rgba([(x * seed) as u8, (y + seed) as u8, (x ^ y) as u8, 255])
            })
        };
        let big = image(300, 200, 3);
        let rgb = image::DynamicImage::ImageRgba8(image(17, 9, 5)).into_rgb8();
        let cases = [
            encode(
                big.as_raw(),
                300,
                200,
                image::ExtendedColorType::Rgba8,
                FilterType::Adaptive,
            ),
            encode(
                rgb.as_raw(),
                17,
                9,
                image::ExtendedColorType::Rgb8,
                FilterType::Paeth,
            ),
            encode(
                image(9, 17, 7).as_raw(),
                9,
                17,
                image::ExtendedColorType::Rgba8,
                FilterType::Avg,
            ),
            b"\x89PNG\r\n\x1a\nbroken".to_vec(),
            encode(
                rgb.as_raw(),
                17,
                9,
                image::ExtendedColorType::Rgb8,
                FilterType::Sub,
            ),
        ];
        for bytes in cases.iter().chain(cases.iter().rev()) {
            let owned = with_decoded(bytes, |image| {
                RgbImage::from_raw(image.width(), image.height(), image.to_vec())
            });
            assert_eq!(
                owned.flatten(),
                image::load_from_memory(bytes).ok().map(|i| i.into_rgb8())
            );
        }
    }

    #[test]
    fn kept_buffers_stay_within_their_bound() {
        for _ in 0..3 {
            let buffers = Buffers {
                stream: Vec::with_capacity(20 << 20),
                pixels: Vec::new(),
            };
            buffers.give_back();
        }
        let kept = KEPT.lock().unwrap();
        assert!(kept.iter().map(Buffers::bytes).sum::<usize>() <= Buffers::KEPT_BYTES);
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
        let mut next = crate::test_random(0x9e37_79b9_7f4a_7c15);
        let (mut taken, mut agreed) = (0, 0);
        for _ in 0..3000 {
            let mut mutated = stream.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % mutated.len() as u64) as usize;
                mutated[at] ^= 1 << (next() % 8);
            }
            if next().is_multiple_of(4) {
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
