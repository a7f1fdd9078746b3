/** Folder holding the umfa library (umfa.dll) for Windows x64. */
export declare const libDir: string;
