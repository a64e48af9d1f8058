//! Image preprocessing, implemented once so every engine and destination sees identical
//! tensors: decode → resize → centre crop → channel order → normalise → pad → layout.

use std::borrow::Cow;
use std::io::Cursor;
use std::ops::Deref;

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8x3;
use fast_image_resize::{FilterType as Kernel, ResizeAlg, ResizeOptions, Resizer};
use image::{ImageBuffer, ImageReader, Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::manifest::{ChannelOrder, Filter, ImageSpec, Layout, Resize};
use crate::tensor::Tensor;

/// Decoded pixels allowed by default: 40 megapixels (a 4:3 image of about 7300×5500).
pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

/// Decodes an encoded image (PNG, JPEG) into RGB, refusing images over `max_pixels` before
/// any pixel buffer is allocated, so a decompression bomb costs nothing.
pub fn decode_image(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    #[cfg(feature = "libdeflate")]
    if let Some((width, height)) = crate::fast_png::dimensions(bytes) {
        check_pixels(width, height, max_pixels)?;
        if let Some(image) = crate::fast_png::decode(bytes) {
            return Ok(image);
        }
    }
    decode_with_image_crate(bytes, max_pixels)
}

/// Any format `image` reads, the size checked from the header first.
fn decode_with_image_crate(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::Image(format!("cannot read image: {e}")))
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| Error::Image(format!("cannot decode image: {e}")))?;
    check_pixels(width, height, max_pixels)?;
    let image = reader()?
        .decode()
        .map_err(|e| Error::Image(format!("cannot decode image: {e}")))?;
    Ok(image.into_rgb8())
}

fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(Error::ImageTooLarge(format!(
            "image is {width}×{height} = {pixels} pixels, over the limit of {max_pixels}"
        )));
    }
    if pixels == 0 {
        return Err(Error::Image("image has no pixels".into()));
    }
    Ok(())
}

impl ImageSpec {
    /// Preprocesses one encoded image into a batch-of-one tensor, `[1, 3, H, W]` (NCHW) or
    /// `[1, H, W, 3]` (NHWC).
    pub fn tensor_from_bytes(&self, bytes: &[u8], max_pixels: u64) -> Result<Tensor> {
        // PNGs the fast path takes are decoded into buffers kept between images (a shared pool).
        #[cfg(feature = "libdeflate")]
        if let Some((width, height)) = crate::fast_png::dimensions(bytes) {
            check_pixels(width, height, max_pixels)?;
            let tensor = crate::fast_png::with_decoded(bytes, |image| {
                self.tensor_from_image(image, max_pixels)
            });
            if let Some(tensor) = tensor {
                return tensor;
            }
        }
        self.tensor_from_image(&decode_with_image_crate(bytes, max_pixels)?, max_pixels)
    }

    /// Preprocesses decoded RGB pixels into a batch-of-one tensor; the resized image is held
    /// to `max_pixels` as the decoded one is.
    pub fn tensor_from_image<Pixels: Deref<Target = [u8]>>(
        &self,
        image: &ImageBuffer<Rgb<u8>, Pixels>,
        max_pixels: u64,
    ) -> Result<Tensor> {
        let (width, height) = self.resized_size(image.dimensions(), max_pixels)?;
        let window = match self.crop {
            Some([h, w]) => centre_window(width, height, w, h)?,
            None => Window {
                left: 0,
                top: 0,
                width,
                height,
            },
        };
        if window.width == 0 || window.height == 0 {
            return Err(Error::Image("the crop leaves no pixels".into()));
        }
        let [out_h, out_w] = self.pad.unwrap_or([window.height, window.width]);
        if out_h < window.height || out_w < window.width {
            return Err(Error::Image(format!(
                "image is {}×{} after resizing, larger than the padded size {out_w}×{out_h}",
                window.width, window.height
            )));
        }
        let pixels = self.resample(image, (width, height), &window)?;
        let shape = match self.layout {
            Layout::Nchw => vec![1, 3, out_h as usize, out_w as usize],
            Layout::Nhwc => vec![1, out_h as usize, out_w as usize, 3],
        };
        Tensor::new(shape, self.normalise(&pixels, [out_h, out_w]))
    }

    /// The window's pixels, normalised into a zero-padded `out_h`×`out_w` tensor's data in the
    /// spec's layout and channel order.
    fn normalise(&self, pixels: &WindowPixels, [out_h, out_w]: [u32; 2]) -> Vec<f32> {
        let (out_h, out_w) = (out_h as usize, out_w as usize);
        let sources = match self.channel_order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        // Every 0..255 value of each channel, normalised once.
        let normalised: [[f32; 256]; 3] = std::array::from_fn(|c| {
            std::array::from_fn(|v| (v as f32 * self.scale - self.mean[c]) / self.std[c])
        });
        // Written in order, the padding (right, then bottom) as zeros: no zero-fill first.
        let (width, height) = (pixels.width, pixels.height);
        let mut data = Vec::with_capacity(3 * out_h * out_w);
        match self.layout {
            // One plane at a time: contiguous writes.
            Layout::Nchw => {
                for (table, &source) in normalised.iter().zip(&sources) {
                    for row in pixels.rows() {
                        data.extend(row.chunks_exact(3).map(|p| table[usize::from(p[source])]));
                        data.resize(data.len() + out_w - width, 0.0);
                    }
                    data.resize(data.len() + (out_h - height) * out_w, 0.0);
                }
            }
            Layout::Nhwc => {
                for row in pixels.rows() {
                    data.extend(row.chunks_exact(3).flat_map(|pixel| {
                        std::array::from_fn::<f32, 3, _>(|c| {
                            normalised[c][usize::from(pixel[sources[c]])]
                        })
                    }));
                    data.resize(data.len() + (out_w - width) * 3, 0.0);
                }
                data.resize(3 * out_h * out_w, 0.0);
            }
        }
        data
    }

    /// The size the spec resizes a `width`×`height` image to, held to `max_pixels` (or the
    /// spec's own size, if larger).
    fn resized_size(&self, (width, height): (u32, u32), max_pixels: u64) -> Result<(u32, u32)> {
        let (new_w, new_h) = match self.resize {
            Resize::ShorterSide(side) if width <= height => (side, scale_len(height, side, width)),
            Resize::ShorterSide(side) => (scale_len(width, side, height), side),
            Resize::Exact([h, w]) => (w, h),
            Resize::FitHeight {
                height: target,
                max_width,
            } => {
                let w = (f64::from(target) * f64::from(width) / f64::from(height)).ceil() as u32;
                (w.clamp(1, max_width), target)
            }
        };
        if new_w == 0 || new_h == 0 {
            return Err(Error::Image(format!(
                "image {width}×{height} resizes to nothing"
            )));
        }
        // A thin image (1×65536, say) scaled to a shorter side of 256 would be 256×16777216:
        // the result may be as large as the spec's own size or `max_pixels`, no larger.
        let spec_pixels = match self.resize {
            Resize::ShorterSide(side) => u64::from(side) * u64::from(side),
            Resize::Exact([h, w]) => u64::from(h) * u64::from(w),
            Resize::FitHeight { height, max_width } => u64::from(height) * u64::from(max_width),
        };
        let limit = max_pixels.max(spec_pixels);
        let pixels = u64::from(new_w) * u64::from(new_h);
        if pixels > limit {
            return Err(Error::ImageTooLarge(format!(
                "image {width}×{height} resizes to {new_w}×{new_h} = {pixels} pixels, over the limit of {limit}"
            )));
        }
        Ok((new_w, new_h))
    }

    /// The `window` of the image resized to `size`: borrowed when the image is that size
    /// already, else only the window is resampled (the filter still reads the pixels around
    /// it, as a resize of the whole image followed by a crop would), with
    /// `fast_image_resize`'s SIMD convolution (Pillow's antialiased filters).
    fn resample<'a, Pixels: Deref<Target = [u8]>>(
        &self,
        image: &'a ImageBuffer<Rgb<u8>, Pixels>,
        (new_w, new_h): (u32, u32),
        window: &Window,
    ) -> Result<WindowPixels<'a>> {
        let (width, height) = image.dimensions();
        if (new_w, new_h) == (width, height) {
            return Ok(WindowPixels {
                data: Cow::Borrowed(image.as_raw()),
                stride: width as usize * 3,
                left: window.left as usize,
                top: window.top as usize,
                width: window.width as usize,
                height: window.height as usize,
            });
        }
        let algorithm = match self.filter {
            Filter::Nearest => ResizeAlg::Nearest,
            Filter::Bilinear => ResizeAlg::Convolution(Kernel::Bilinear),
            Filter::Bicubic => ResizeAlg::Convolution(Kernel::CatmullRom),
            Filter::Lanczos3 => ResizeAlg::Convolution(Kernel::Lanczos3),
        };
        let failed = |e: &dyn std::fmt::Display| Error::Image(format!("cannot resize image: {e}"));
        // Typed RGB views: only the RGB resizers are compiled in (the untyped API would pull in
        // every pixel type's, a megabyte more on an ARM binary).
        let source = TypedImageRef::<U8x3>::from_buffer(width, height, image.as_raw())
            .map_err(|e| failed(&e))?;
        let (scale_x, scale_y) = (
            f64::from(width) / f64::from(new_w),
            f64::from(height) / f64::from(new_h),
        );
        let options = ResizeOptions::new().resize_alg(algorithm).crop(
            f64::from(window.left) * scale_x,
            f64::from(window.top) * scale_y,
            f64::from(window.width) * scale_x,
            f64::from(window.height) * scale_y,
        );
        let mut pixels = vec![0u8; window.width as usize * window.height as usize * 3];
        let mut resized = TypedImage::<U8x3>::from_buffer(window.width, window.height, &mut pixels)
            .map_err(|e| failed(&e))?;
        Resizer::new()
            .resize_typed(&source, &mut resized, &options)
            .map_err(|e| failed(&e))?;
        Ok(WindowPixels {
            data: Cow::Owned(pixels),
            stride: window.width as usize * 3,
            left: 0,
            top: 0,
            width: window.width as usize,
            height: window.height as usize,
        })
    }
}

/// A window of packed RGB pixels: `width`×`height` from (`left`, `top`) of rows `stride`
/// bytes apart.
struct WindowPixels<'a> {
    data: Cow<'a, [u8]>,
    stride: usize,
    left: usize,
    top: usize,
    width: usize,
    height: usize,
}

impl WindowPixels<'_> {
    /// The window's rows, `width * 3` bytes each.
    fn rows(&self) -> impl Iterator<Item = &[u8]> {
        let (start, len) = (self.left * 3, self.width * 3);
        self.data
            .chunks_exact(self.stride)
            .skip(self.top)
            .take(self.height)
            .map(move |row| &row[start..start + len])
    }
}

/// `long * side / short`, rounded to nearest as PIL-based pipelines do, at least 1.
fn scale_len(long: u32, side: u32, short: u32) -> u32 {
    (f64::from(long) * f64::from(side) / f64::from(short.max(1)))
        .round()
        .max(1.0) as u32
}

/// A rectangle of an image, in pixels.
struct Window {
    left: u32,
    top: u32,
    width: u32,
    height: u32,
}

/// The centred `width`×`height` window of a `w`×`h` image (offsets rounded half to even, as
/// torchvision does).
fn centre_window(w: u32, h: u32, width: u32, height: u32) -> Result<Window> {
    if width > w || height > h {
        return Err(Error::Image(format!(
            "cannot crop {width}×{height} from a {w}×{h} image; resize to at least the crop size"
        )));
    }
    Ok(Window {
        left: (f64::from(w - width) / 2.0).round_ties_even() as u32,
        top: (f64::from(h - height) / 2.0).round_ties_even() as u32,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn spec(resize: Resize) -> ImageSpec {
        ImageSpec {
            resize,
            filter: Filter::Bilinear,
            crop: None,
            pad: None,
            channel_order: ChannelOrder::Rgb,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            layout: Layout::Nchw,
        }
    }

    fn encoded_png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn layouts_and_channel_orders_place_pixels() {
        let bytes = encoded_png(4, 2);
        let mut s = spec(Resize::Exact([2, 4]));
        let nchw = s.tensor_from_bytes(&bytes, 100).unwrap();
        assert_eq!(nchw.shape(), &[1, 3, 2, 4]);
        let v = nchw.as_f32().unwrap();
        assert_eq!(v[3], 3.0); // R at (x=3, y=0)
        assert_eq!(v[8 + 4], 1.0); // G at (x=0, y=1)
        assert_eq!(v[16], 7.0); // B plane
        s.layout = Layout::Nhwc;
        s.channel_order = ChannelOrder::Bgr;
        let nhwc = s.tensor_from_bytes(&bytes, 100).unwrap();
        assert_eq!(nhwc.shape(), &[1, 2, 4, 3]);
        assert_eq!(&nhwc.as_f32().unwrap()[3 * 3..3 * 3 + 3], &[7.0, 0.0, 3.0]);
    }

    #[test]
    fn fit_height_pads_with_zeros() {
        let mut s = spec(Resize::FitHeight {
            height: 2,
            max_width: 8,
        });
        s.pad = Some([2, 8]);
        s.mean = [1.0; 3];
        let t = s.tensor_from_bytes(&encoded_png(4, 2), 100).unwrap();
        assert_eq!(t.shape(), &[1, 3, 2, 8]);
        let v = t.as_f32().unwrap();
        assert_eq!(v[4..8], [0.0; 4]); // padding stays zero after normalising
        assert_eq!(v[1], 0.0); // pixel value 1 minus mean 1
    }

    #[test]
    fn padding_fills_the_right_and_the_bottom_in_both_layouts() {
        // Two pixels, (0, 0, 7) and (1, 0, 7), in a 2×3 tensor.
        let mut s = spec(Resize::Exact([1, 2]));
        s.pad = Some([2, 3]);
        s.mean = [-1.0; 3];
        let bytes = encoded_png(2, 1);
        let nchw = s.tensor_from_bytes(&bytes, 100).unwrap();
        assert_eq!(nchw.shape(), &[1, 3, 2, 3]);
        let plane = |a: f32, b: f32| [a, b, 0.0, 0.0, 0.0, 0.0];
        let expected: Vec<f32> = [plane(1.0, 2.0), plane(1.0, 1.0), plane(8.0, 8.0)].concat();
        assert_eq!(nchw.as_f32().unwrap(), &expected[..]);
        s.layout = Layout::Nhwc;
        let nhwc = s.tensor_from_bytes(&bytes, 100).unwrap();
        assert_eq!(nhwc.shape(), &[1, 2, 3, 3]);
        let mut expected = vec![1.0, 1.0, 8.0, 2.0, 1.0, 8.0];
        expected.resize(18, 0.0);
        assert_eq!(nhwc.as_f32().unwrap(), &expected[..]);
    }

    #[test]
    fn refuses_oversized_and_broken_images() {
        let bytes = encoded_png(20, 10);
        let err = decode_image(&bytes, 199).unwrap_err();
        assert!(err.to_string().contains("over the limit of 199"), "{err}");
        let err = decode_image(&bytes[..bytes.len() / 2], 1000).unwrap_err();
        assert!(matches!(err, Error::Image(_)));
        assert!(decode_image(b"plain text", 1000).is_err());
    }

    #[test]
    fn thin_images_cannot_resize_past_the_pixel_limit() {
        // 1×65536 pixels decode within the limit, but a shorter side of 256 would make them
        // 256×16777216: a 12 GiB allocation without the check.
        let thin = encoded_png(1, 65536);
        let s = spec(Resize::ShorterSide(256));
        let err = s.tensor_from_bytes(&thin, 1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .contains("resizes to 256×16777216 = 4294967296 pixels, over the limit"),
            "{err}"
        );
        let wide = encoded_png(65536, 1);
        assert!(s.tensor_from_bytes(&wide, 1 << 20).is_err());
        // Moderate aspect ratios stay within the limit, and the spec's own size is always
        // allowed, however small `max_pixels` is.
        let t = s.tensor_from_bytes(&encoded_png(4, 8), 1 << 20).unwrap();
        assert_eq!(t.shape(), &[1, 3, 512, 256]);
        let t = s.tensor_from_bytes(&encoded_png(8, 8), 64).unwrap();
        assert_eq!(t.shape(), &[1, 3, 256, 256]);
        let exact = spec(Resize::Exact([224, 224]));
        assert!(exact.tensor_from_bytes(&encoded_png(8, 8), 64).is_ok());
    }

    #[test]
    fn crop_larger_than_image_is_an_error() {
        let mut s = spec(Resize::ShorterSide(4));
        s.crop = Some([8, 8]);
        assert!(s.tensor_from_bytes(&encoded_png(6, 4), 100).is_err());
    }
}
