/** Folder holding the umfa library (libumfa.so.1) for Linux x64 with glibc. */
export declare const libDir: string;
