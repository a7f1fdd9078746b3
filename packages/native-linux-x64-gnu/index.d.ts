/** Folder holding libumfa.so.1 for Linux x64 (glibc). */
export declare const libDir: string;
