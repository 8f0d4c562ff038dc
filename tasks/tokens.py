"""The special tokens of every word vocabulary (PAD=0, EOS=1, UNK=2), importable without seqio."""

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPECIALS = (PAD, EOS, UNK)
