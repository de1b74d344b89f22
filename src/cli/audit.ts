/** `geogate audit`. TODO: implemented by its issue. */
export async function run (_argv: string[]): Promise<number> {
  process.stderr.write('geogate audit: not implemented yet\n')
  return 1
}
