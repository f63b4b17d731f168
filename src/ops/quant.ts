// Public ops of the quant family (filled by its issue).
export {};
