/** Folder holding the umfa library (libumfa.1.dylib) for macOS on Intel (x64). */
export declare const libDir: string;
