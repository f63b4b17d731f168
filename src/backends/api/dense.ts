// Dense kernels: the interface every backend implements for this family (filled by its issue).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface DenseKernels {}
