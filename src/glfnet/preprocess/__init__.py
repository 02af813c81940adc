"""Preprocessing: raw frames -> face crop -> optical flow + strain -> cache.

``face`` (dlib detection, 68 landmarks, eye levelling, crop), ``flow`` (TV-L1 / Farneback /
DIS, optical strain, resizing), ``apex`` (midpoint and flow-peak rules), ``pipeline``
(one sample, a whole protocol in parallel into a cache, :func:`flow_from_pair` for a user's
own clip), ``export`` (the STSTNet 28x28 PNG layout). See docs/preprocessing.md.
"""
