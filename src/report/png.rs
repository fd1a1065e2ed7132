//! The report's figures as PNG: each standalone SVG rasterised by resvg (pure Rust), on
//! white, at twice its size (sharp on a high-density screen or a slide).
//!
//! Text is drawn with a sans-serif font of the system's (`/usr/share/fonts`, fontconfig's
//! directories); where none is installed the figure is drawn without its labels.

use std::sync::{Arc, OnceLock};

use resvg::tiny_skia::{Color, Pixmap, Transform};
use resvg::usvg::{self, fontdb};

use crate::error::{Error, Result};

/// Pixels per SVG unit in the PNG.
pub const SCALE: f32 = 2.0;

/// The system's fonts, loaded once, `sans-serif` mapped to a sans face that is installed.
fn fonts() -> Arc<fontdb::Database> {
    static DB: OnceLock<Arc<fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        let families: Vec<String> = db
            .faces()
            .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
            .collect();
        let preferred = [
            "Liberation Sans",
            "DejaVu Sans",
            "Noto Sans",
            "Arial",
            "Helvetica",
        ];
        if let Some(f) = preferred
            .iter()
            .find(|p| families.iter().any(|f| f == *p))
            .map(|p| p.to_string())
            .or_else(|| families.first().cloned())
        {
            db.set_sans_serif_family(f);
        }
        Arc::new(db)
    })
    .clone()
}

/// The PNG of a standalone SVG figure (`name` names it in errors): `SCALE` pixels per
/// SVG unit, on white.
///
/// # Errors
/// [`Error::Config`] when the SVG does not parse or is empty (a defect of the report).
pub fn render(svg: &str, name: &str) -> Result<Vec<u8>> {
    let opt = usvg::Options {
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let bad = |what: String| Error::Config(format!("figure {name}: {what}; please report this"));
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| bad(format!("bad SVG: {e}")))?;
    let size = tree
        .size()
        .scale_by(SCALE)
        .ok_or_else(|| bad("empty SVG".into()))?
        .to_int_size();
    let mut pixmap =
        Pixmap::new(size.width(), size.height()).ok_or_else(|| bad("empty SVG".into()))?;
    pixmap.fill(Color::WHITE);
    resvg::render(
        &tree,
        Transform::from_scale(SCALE, SCALE),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| bad(format!("PNG encoding failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_shapes_at_twice_the_size() {
        let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"30\" \
                   viewBox=\"0 0 40 30\"><rect x=\"10\" y=\"5\" width=\"10\" height=\"10\" \
                   fill=\"#000\"/></svg>";
        let png = render(svg, "t").unwrap();
        let px = Pixmap::decode_png(&png).unwrap();
        assert_eq!((px.width(), px.height()), (80, 60));
        let dark = px.pixels().iter().filter(|p| p.red() < 128).count();
        // The 10 × 10 square, 20 × 20 pixels at scale 2.
        assert_eq!(dark, 400);
        assert!(render("<svg", "t").is_err());
    }
}
