"""Values: digests, descriptors, platforms, references, layers, images, indexes, and pure
transforms over them. No I/O beyond opening a layer's bytes.
"""
