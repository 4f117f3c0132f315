//! Whether a dataset's frames are 2D images or 3D stacks (ZYX, the Cell
//! Tracking Challenge's Fluo-N3DH-* layout), told from the files' headers:
//! a TIFF of one page is a 2D image, one of several pages a stack. A
//! dataset is one or the other, and every mask has its image's planes.

use std::path::PathBuf;

use super::ctc::Frame;
use super::tiff_stack::stack_header;
use super::volume::Spacing;
use super::DataError;

/// What a dataset's annotated frames are.
#[derive(Clone, Debug, PartialEq)]
pub enum FrameDims {
    Planar,
    Stacks {
        /// The first frame's image, its planes and its voxel spacing (where
        /// its metadata says it): what messages and the anisotropy name.
        first: PathBuf,
        planes: usize,
        spacing: Option<Spacing>,
    },
}

impl FrameDims {
    pub fn is_3d(&self) -> bool {
        matches!(self, FrameDims::Stacks { .. })
    }
}

/// Reads each frame's image and mask headers; one line naming the files
/// where a mask's planes differ from its image's or 2D and 3D frames mix.
/// No frames is planar.
pub fn frame_dims(frames: &[Frame]) -> Result<FrameDims, DataError> {
    let mut planar: Option<&Frame> = None;
    let mut stacks: Option<FrameDims> = None;
    for frame in frames {
        let (planes, spacing) = stack_header(&frame.image)?;
        let (mask_planes, _) = stack_header(&frame.mask)?;
        if planes != mask_planes {
            return Err(DataError::PlanesMismatch {
                image: frame.image.clone(),
                mask: frame.mask.clone(),
                image_planes: planes,
                mask_planes,
            });
        }
        match (planes > 1, &stacks, planar) {
            (true, None, None) => {
                stacks = Some(FrameDims::Stacks {
                    first: frame.image.clone(),
                    planes,
                    spacing,
                })
            }
            (false, None, None) => planar = Some(frame),
            (true, None, Some(p)) => return Err(mixed(&p.image, &frame.image, planes)),
            (false, Some(FrameDims::Stacks { first, planes, .. }), _) => {
                return Err(mixed(&frame.image, first, *planes))
            }
            _ => {}
        }
    }
    Ok(stacks.unwrap_or(FrameDims::Planar))
}

fn mixed(planar: &std::path::Path, stack: &std::path::Path, planes: usize) -> DataError {
    DataError::MixedDims {
        planar: planar.to_path_buf(),
        stack: stack.to_path_buf(),
        planes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ctc::{discover, Annotation};
    use crate::data::tiff_io::{write_f32, write_labels};
    use crate::data::tiff_stack::{write_label_stack, write_stack_f32};
    use crate::data::volume::Volume;
    use crate::data::Grid;
    use std::path::Path;

    /// A CTC dataset with one sequence whose frame t has `planes[t]` image
    /// planes and `mask_planes[t]` mask planes (1 = a 2D file).
    fn dataset(root: &Path, planes: &[(usize, usize)]) -> Vec<Frame> {
        std::fs::create_dir_all(root.join("01")).unwrap();
        std::fs::create_dir_all(root.join("01_GT/SEG")).unwrap();
        let spacing = Some(Spacing { z: 2.0, xy: 0.5 });
        for (t, &(image, mask)) in planes.iter().enumerate() {
            let im = root.join(format!("01/t{t:03}.tif"));
            let m = root.join(format!("01_GT/SEG/man_seg{t:03}.tif"));
            if image == 1 {
                write_f32(&im, &Grid::filled(8, 6, 0.5f32)).unwrap();
            } else {
                write_stack_f32(&im, &Volume::filled(image, 6, 8, 0.5f32), spacing).unwrap();
            }
            if mask == 1 {
                write_labels(&m, &Grid::filled(8, 6, 1u32)).unwrap();
            } else {
                write_label_stack(&m, &Volume::filled(mask, 6, 8, 1u32), None).unwrap();
            }
        }
        discover(root, &["01".into()], crate::config::Annotations::Gt).unwrap()
    }

    #[test]
    fn planar_and_stacked_datasets_are_told_from_the_headers() {
        let dir = tempfile::tempdir().unwrap();
        let flat = dataset(&dir.path().join("flat"), &[(1, 1), (1, 1)]);
        assert_eq!(frame_dims(&flat).unwrap(), FrameDims::Planar);
        let deep = dataset(&dir.path().join("deep"), &[(5, 5), (7, 7)]);
        let dims = frame_dims(&deep).unwrap();
        assert!(dims.is_3d());
        let FrameDims::Stacks {
            planes,
            spacing,
            first,
        } = dims
        else {
            unreachable!()
        };
        assert_eq!(planes, 5);
        assert_eq!(spacing.unwrap().anisotropy(), 4.0);
        assert!(first.ends_with("01/t000.tif"));
        assert_eq!(deep[0].annotation, Annotation::GT);
        assert_eq!(frame_dims(&[]).unwrap(), FrameDims::Planar);
    }

    #[test]
    fn a_mask_of_other_planes_and_mixed_frames_are_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let frames = dataset(&dir.path().join("a"), &[(5, 1)]);
        let e = frame_dims(&frames).unwrap_err().to_string();
        assert!(
            e.contains("t000.tif is a 3D stack of 5 planes")
                && e.contains("man_seg000.tif is a 2D image"),
            "{e}"
        );
        let frames = dataset(&dir.path().join("b"), &[(1, 4)]);
        let e = frame_dims(&frames).unwrap_err().to_string();
        assert!(
            e.contains("t000.tif is a 2D image") && e.contains("a 3D stack of 4 planes"),
            "{e}"
        );
        let frames = dataset(&dir.path().join("c"), &[(5, 6)]);
        let e = frame_dims(&frames).unwrap_err().to_string();
        assert!(e.contains("5 planes") && e.contains("6 planes"), "{e}");
        for (name, planes) in [("d", [(1, 1), (3, 3)]), ("e", [(3, 3), (1, 1)])] {
            let frames = dataset(&dir.path().join(name), &planes);
            let e = frame_dims(&frames).unwrap_err().to_string();
            assert!(
                e.contains("mix 2D images and 3D stacks")
                    && e.contains("t000.tif")
                    && e.contains("t001.tif")
                    && e.contains("3 planes"),
                "{e}"
            );
            assert_eq!(e.lines().count(), 1);
        }
    }
}
