// Operator kernels (filled in by the ops work).
