import { Type, type Static } from '@sinclair/typebox'

export const AdminTokenSchema = Type.Object({
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  role: Type.Union([Type.Literal('admin'), Type.Literal('auditor')]),
  name: Type.Optional(Type.String({ description: 'Who holds it; written into the audit log of admin changes' }))
}, { additionalProperties: false })

export const AdminSchema = Type.Object({
  tokens: Type.Array(AdminTokenSchema, { default: [] })
}, { additionalProperties: false, default: {} })

export type AdminConfig = Static<typeof AdminSchema>
export type AdminRole = AdminConfig['tokens'][number]['role']
