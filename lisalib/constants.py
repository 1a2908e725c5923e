"""The project's vocabulary: every token string, ignore value and the chat template, defined once
(ReasonSeg's own question and answer templates are LISA's data format: :mod:`lisalib.reasonseg.dataset`).

Two different "ignore" values exist and are easy to confuse: ``LABEL_IGNORE_INDEX`` (-100) marks token
labels that carry no language-model loss (PyTorch's ``cross_entropy`` default, what transformers expects);
``MASK_IGNORE_VALUE`` (255) marks ground-truth mask pixels that no metric or loss scores (ReasonSeg's
``ignore`` polygons, as LISA's ``get_mask_from_json`` paints them).
"""
SEG_TOKEN = "<SEG>"  # LISA writes [SEG]; this repository's models add <SEG> as one added (never split) token
IMAGE_TOKEN = "<image>"  # LLaVA's placeholder, expanded by the processor to one token per image patch

LABEL_IGNORE_INDEX = -100  # token labels without loss: prompt, image tokens, padding
MASK_IGNORE_VALUE = 255  # mask pixels without score: occluded or ambiguous parts of the target
MASK_TARGET_VALUE = 1  # mask pixels of the target; 0 is background

CHAT_TEMPLATE_NAME = "llava-1.5"  # the conversation format every VLM prompt here uses (tiny and real)
CHAT_PROMPT = "USER: " + IMAGE_TOKEN + "\n{question} ASSISTANT:"  # first turn, with the image
FOLLOW_UP_PROMPT = "USER: {question} ASSISTANT:"  # later turns of the same conversation


def chat_prompt(question: str) -> str:
    """The LLaVA-1.5 prompt around a question (the processor expands ``<image>`` to patch tokens)."""
    return CHAT_PROMPT.format(question=question)
