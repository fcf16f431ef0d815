"""Layer bytes: reproducible tars from files, compression and decompression, safe tar
reading, the one-pass blob writer.
"""
