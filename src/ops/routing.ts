// Public ops of the routing family (filled by its issue).
export {};
