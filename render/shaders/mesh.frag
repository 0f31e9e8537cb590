#version 330 core
// Lambert diffuse from pyrender's directional lights plus its ambient light, output in sRGB (as
// pyrender's own shader: gamma 2.2). The diffuse term equals pyrender's (base colour x 0.96 / pi x
// radiance x cos), without the specular lobe. Faces seen from behind are lit like their front.

struct DirectionalLight {
    vec3 color;
    float intensity;
    vec3 direction;
};

struct Material {
    vec3 emissive_factor;
    vec4 base_color_factor;
    float metallic_factor;
    float roughness_factor;
};

uniform Material material;
uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform int n_directional_lights;
uniform vec3 ambient_light;

in vec3 frag_position;
#ifdef NORMAL_LOC
in vec3 frag_normal;
#endif

out vec4 frag_color;

const float PI = 3.141592653589793;

void main()
{
    vec4 base = material.base_color_factor;
#ifdef NORMAL_LOC
    vec3 n = normalize(frag_normal);
#else
    vec3 n = normalize(cross(dFdx(frag_position), dFdy(frag_position)));
#endif
    if (!gl_FrontFacing) {
        n = -n;
    }
    vec3 color = base.rgb * ambient_light;
    vec3 c_diff = base.rgb * 0.96 / PI;
    for (int i = 0; i < n_directional_lights; i++) {
        vec3 l = normalize(-directional_lights[i].direction);
        float nl = max(dot(n, l), 0.0);
        color += c_diff * directional_lights[i].intensity * directional_lights[i].color * nl;
    }
    frag_color = clamp(vec4(pow(color, vec3(1.0 / 2.2)), base.a), 0.0, 1.0);
}
