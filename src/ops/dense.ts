// Public ops of the dense family (filled by its issue).
export {};
