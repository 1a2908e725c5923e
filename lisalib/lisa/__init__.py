"""Chapters 2-4: LISA-style reasoning segmentation with one model and three vision sources.

``configuration``, ``bridges`` and ``modeling`` (the composite model), ``processing`` (prompts,
``<SEG>``, image geometry), ``losses`` (LISA's), ``train`` (chapter 3's CLI), ``evaluate`` (chapter 4's
two protocols) and ``ceiling`` (where the gIoU is lost).
"""
