/** Folder holding the umfa library (libumfa.1.dylib) for macOS on Apple silicon (arm64). */
export declare const libDir: string;
