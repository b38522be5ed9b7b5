"""Render the bundled sample data from images that scikit-image ships.

    python sample_data/make_sample_data.py

pair_A.tif / pair_B.tif   immunohistochemistry (RGB uint8, 384×384): A sharp inside a
                          smooth blob, B sharp outside it (disk defocus, radius 4 px)
pair_sharp.tif            the sharp original (ground truth for the fused image)
pair_mask.png             the true decision map (255 = A is in focus)
stack.tif                 8-slice uint16 focal stack of scikit-image's ``cell`` (Z, Y, X)
stack_sharp.tif           its sharp original
stack_depth.tif           the true in-focus slice per pixel (uint16)
"""

from pathlib import Path

from acnn_fusion.synthetic import write_sample_data

if __name__ == "__main__":
    for path in write_sample_data(Path(__file__).parent):
        print(path)
