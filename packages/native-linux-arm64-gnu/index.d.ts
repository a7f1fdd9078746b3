/** Folder holding the umfa library (libumfa.so.1) for Linux arm64 (aarch64) with glibc. */
export declare const libDir: string;
