// The small training stack the experiments need (filled by the grok issue).
export {};
